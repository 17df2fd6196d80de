import { describe, expect, it } from 'vitest';
import { RunEvents, type RunEvent } from '../src/events/run-events.js';
import { RunLedger } from '../src/runner/result/ledger.js';

const end = (event: Omit<Extract<RunEvent, { type: 'step-end' }>, 'type' | 'durationMs'>): RunEvent => ({ type: 'step-end', durationMs: 1, ...event }) as RunEvent;

function replay(events: RunEvent[]): RunLedger {
  const ledger = new RunLedger();
  for (const event of events) ledger.listener(event);
  return ledger;
}

const SNAPSHOT = { id: 's1', path: '/b/s1.dump', sha256: 'ab', sizeBytes: 10 };

describe('the run ledger: a result made of step events only', () => {
  it('a rejected change: applied, then reverted newest first, back at the prior revision; what never ran is not-run', () => {
    const ledger = replay([
      end({ step: 'plan', outcome: 'ok', detail: { from: '0001', to: '0004', apply: ['0002', '0003', '0004'] } }),
      end({ step: 'backup', outcome: 'ok', detail: { ...SNAPSHOT, file: 's1.dump', revision: '0001' } }),
      end({ step: 'apply', revision: '0002', outcome: 'ok', detail: { now: '0002' } }),
      end({ step: 'apply', revision: '0003', outcome: 'failed', detail: { error: 'division by zero' } }),
      end({ step: 'down', revision: '0002', outcome: 'ok', detail: { now: '0001' } }),
    ]);
    expect(ledger.facts.toRevision).toBe('0001');
    expect(ledger.facts.snapshot).toEqual(SNAPSHOT);
    expect(ledger.finalRevisions().map((r) => `${r.name}:${r.status}`)).toEqual(['0002:reverted', '0003:failed', '0004:not-run']);
  });

  it('a restore that worked puts the snapshot\'s revision back and marks what the run touched restored', () => {
    const ledger = replay([
      end({ step: 'plan', outcome: 'ok', detail: { from: '0001', to: '0003', apply: ['0002', '0003'] } }),
      end({ step: 'apply', revision: '0002', outcome: 'ok', detail: { now: '0002' } }),
      end({ step: 'down', revision: '0002', outcome: 'failed', detail: { error: 'boom' } }),
      end({
        step: 'restore',
        subject: 's1',
        outcome: 'ok',
        detail: { ok: true, strategy: 'swap', quarantine: 'db_q', quarantineSnapshot: null, message: 'restored', manualSteps: [], snapshot: SNAPSHOT, revision: '0001' },
      }),
    ]);
    expect(ledger.facts.toRevision).toBe('0001');
    expect(ledger.facts.restore).toMatchObject({ ok: true, quarantine: 'db_q' });
    expect(ledger.finalRevisions().map((r) => `${r.name}:${r.status}`)).toEqual(['0002:restored', '0003:not-run']);
  });

  it('a restore that failed changes no revision and says so', () => {
    const ledger = replay([
      end({ step: 'plan', outcome: 'ok', detail: { from: '0001', to: '0002', apply: ['0002'] } }),
      end({ step: 'apply', revision: '0002', outcome: 'ok', detail: { now: '0002' } }),
      end({
        step: 'restore',
        subject: 's1',
        outcome: 'failed',
        detail: { ok: false, strategy: 'swap', quarantine: null, quarantineSnapshot: null, message: 'tampered', manualSteps: ['belay backups verify s1'], snapshot: SNAPSHOT, revision: '0001' },
      }),
    ]);
    expect(ledger.facts.toRevision).toBe('0002');
    expect(ledger.facts.restore).toMatchObject({ ok: false, manualSteps: ['belay backups verify s1'] });
    expect(ledger.facts.snapshot).toEqual(SNAPSHOT);
  });

  it('every step that starts ends, even when its work throws', async () => {
    const events = new RunEvents();
    const ledger = new RunLedger();
    events.on(ledger.listener);
    const seen: RunEvent[] = [];
    events.on((event) => void seen.push(event));
    await expect(events.judged({ step: 'health', subject: 'after-apply' }, () => Promise.reject(new Error('connection terminated')), () => ({ ok: true }))).rejects.toThrow('connection terminated');
    expect(ledger.facts.openSteps).toEqual([]);
    expect(seen.map((e) => `${e.type}:${'outcome' in e ? e.outcome : ''}`)).toEqual(['step-start:', 'step-end:failed']);
    expect(seen[1]).toMatchObject({ detail: { error: 'connection terminated' } });
  });

  it('health: the checks still failing at the end are the result\'s', () => {
    const ledger = replay([
      end({ step: 'health', subject: 'after-apply', outcome: 'ok', detail: { attempts: 1, failing: [{ kind: 'sql', name: 'broken', ok: false, evidence: 'x', durationMs: 1 }], tolerated: ['broken'] } }),
    ]);
    expect(ledger.facts.failingChecks).toEqual(['broken']);
  });
});
