import type { RestoreReport, RunEvent, SnapshotRef, StepRef } from '../../events/run-events.js';
import type { PreflightCheck } from '../../events/run-events.js';
import { stepLabel } from '../../events/run-events.js';
import type { RevisionResult } from './results.js';

/** What a run's step events say happened: the facts its result, journal outcome and history are made of. */
export interface RunFacts {
  fromRevision: string | null;
  /** The revision the database is at, as the last step that changed it left it. */
  toRevision: string | null;
  revisions: RevisionResult[];
  /** Where each of `revisions` is, by name: a step's end finds its revision without a scan (a run of 800 revisions ends 1600 steps). */
  revisionAt: ReadonlyMap<string, number>;
  snapshot: SnapshotRef | null;
  restore: RestoreReport | null;
  checks: PreflightCheck[];
  /** The last health step's failing checks, and those tolerated by --allow-unhealthy. */
  failingChecks: string[];
  /** Steps that started and have not ended. */
  openSteps: string[];
}

export const noFacts = (revision: string | null): RunFacts => ({
  fromRevision: revision,
  toRevision: revision,
  revisions: [],
  revisionAt: new Map(),
  snapshot: null,
  restore: null,
  checks: [],
  failingChecks: [],
  openSteps: [],
});

function withStatus(facts: RunFacts, name: string, status: RevisionResult['status'], durationMs?: number): Pick<RunFacts, 'revisions' | 'revisionAt'> {
  const entry = (r: RevisionResult): RevisionResult => ({ ...r, status, ...(durationMs === undefined ? {} : { durationMs }) });
  const at = facts.revisionAt.get(name);
  if (at === undefined) return { revisions: [...facts.revisions, entry({ name, status })], revisionAt: new Map(facts.revisionAt).set(name, facts.revisions.length) };
  const revisions = facts.revisions.slice();
  revisions[at] = entry(revisions[at]!);
  return { revisions, revisionAt: facts.revisionAt };
}

const label = (ref: StepRef): string => stepLabel(ref);

/** The reducer: one event at a time, nothing but the events. */
export function reduceRun(facts: RunFacts, event: RunEvent): RunFacts {
  if (event.type === 'step-start') return { ...facts, openSteps: [...facts.openSteps, label(event)] };
  if (event.type !== 'step-end') return facts;
  const closed = facts.openSteps.lastIndexOf(label(event));
  const next: RunFacts = { ...facts, openSteps: closed === -1 ? facts.openSteps : facts.openSteps.filter((_, i) => i !== closed) };
  const ok = event.outcome === 'ok';
  switch (event.step) {
    case 'plan': {
      if (!ok || !event.detail) return next;
      const names = event.detail.apply ?? event.detail.revert ?? [];
      return {
        ...next,
        fromRevision: event.detail.from,
        toRevision: event.detail.from,
        revisions: names.map((name) => ({ name, status: 'pending' })),
        revisionAt: new Map(names.map((name, i) => [name, i])),
      };
    }
    case 'preflight':
      return event.detail && 'checks' in event.detail ? { ...next, checks: event.detail.checks } : next;
    case 'backup':
      return ok && event.detail ? { ...next, snapshot: { id: event.detail.id, path: event.detail.path, sha256: event.detail.sha256, sizeBytes: event.detail.sizeBytes } } : next;
    case 'apply':
    case 'down': {
      if (!event.revision) return next;
      // durationMs: how long the step that gave the revision its status took (its up, its down, the one that failed)
      if (!ok) return { ...next, ...withStatus(next, event.revision, 'failed', event.durationMs) };
      const moved = event.detail ? { toRevision: event.detail.now } : {};
      return { ...next, ...moved, ...withStatus(next, event.revision, event.step === 'apply' ? 'applied' : 'reverted', event.durationMs) };
    }
    case 'health': {
      if (!event.detail || !('failing' in event.detail)) return next;
      return { ...next, failingChecks: event.detail.failing.map((c) => c.name) };
    }
    case 'restore': {
      if (!event.detail || !('strategy' in event.detail)) return next;
      const { snapshot, revision, ...report } = event.detail;
      if (!report.ok) return { ...next, restore: report, snapshot: next.snapshot ?? snapshot };
      const undone = (r: RevisionResult): RevisionResult => (r.status === 'pending' ? { ...r, status: 'not-run' } : { ...r, status: 'restored' });
      return { ...next, restore: report, snapshot: next.snapshot ?? snapshot, toRevision: revision, revisions: next.revisions.map(undone) };
    }
    default:
      return next;
  }
}

/** Listens to a run's events and keeps its facts. */
export class RunLedger {
  facts: RunFacts = noFacts(null);

  readonly listener = (event: RunEvent): void => {
    this.facts = reduceRun(this.facts, event);
  };

  /** Where the run starts, before any plan step says so. */
  startAt(revision: string | null): void {
    this.facts = { ...this.facts, fromRevision: revision, toRevision: revision };
  }

  /** The revisions at the end of a run: what was never reached is not-run. */
  finalRevisions(): RevisionResult[] {
    return this.facts.revisions.map((r) => (r.status === 'pending' ? { ...r, status: 'not-run' } : r));
  }
}
