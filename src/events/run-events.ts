import type { CheckResult } from '../health/run-health.js';
import type { IntegrityReport } from '../integrity/check-integrity.js';
import type { Fingerprint } from '../integrity/fingerprint.js';
import type { RunHeader, RunOutcome } from '../journal/record.js';

/**
 * A run's steps as events: the spine of belay. The journal records them, the
 * terminal output shows them, and a run's result is derived from them; the
 * runner that emits them knows none of those listeners.
 */

export type StepName =
  | 'plan'
  | 'lock'
  | 'preflight'
  | 'scope'
  | 'fingerprint'
  | 'backup'
  | 'hook'
  | 'apply'
  | 'health'
  | 'down'
  | 'integrity'
  | 'schema'
  | 'restore'
  | 'journal';

interface Where {
  revision?: string;
  /** What else the step is about: a hook's name, a health phase, a snapshot id. */
  subject?: string;
}

export interface StepRef extends Where {
  step: StepName;
}

export const stepLabel = (ref: Where & { step: string }): string => [ref.step, ref.revision ?? ref.subject].filter(Boolean).join(' ');

export interface PreflightCheck {
  name: string;
  ok: boolean;
  message: string;
  /** What to do about it, when it failed. */
  hint?: string;
}

export interface SnapshotRef {
  id: string;
  path: string;
  sha256: string;
  sizeBytes: number;
}

export type RestoreStrategy = 'swap' | 'in-place';

export interface RestoreReport {
  ok: boolean;
  strategy: RestoreStrategy;
  /** The damaged database, renamed aside by a swap; never dropped by belay. */
  quarantine: string | null;
  /** The damaged state dumped before an in-place restore overwrote it. */
  quarantineSnapshot: string | null;
  /** A touched snapshot's restore: the schema that keeps the damaged tables and what the run created. */
  quarantineSchema?: string;
  /** What was cut between that schema and the live objects (foreign keys either way, triggers, defaults…), each with its definition. */
  severed?: string[];
  /** Ties between that schema and live objects that could not be cut (a column of a live type, a view on a live table). */
  stillTied?: string[];
  /** The snapshot's owners whose objects now belong to the restoring role (a restore by a role that is not a superuser). */
  ownersReplaced?: string[];
  message: string;
  /** Where things stand when it did not work, and what to run. */
  manualSteps: string[];
  /** It did not work and left the database as it was: nothing dropped, nothing restored. */
  untouched?: true;
}

/** Which snapshot a run takes (backup.scope / --backup-scope) and why, decided in preflight. */
export interface ScopeChoice {
  mode: 'full' | 'touched' | 'auto';
  kind: 'full' | 'touched';
  why: string;
  /** The relations whose rows a touched snapshot holds ("schema.name"). */
  tables?: string[];
  learnedFrom?: string;
}

/** What each step reports when it ends. */
export interface StepPayloads {
  lock: { applicationName: string };
  plan: { from: string | null; to: string | null; apply?: string[]; revert?: string[]; [more: string]: unknown };
  preflight: { checks: PreflightCheck[]; scope?: ScopeChoice };
  /** Learning what the revisions touch, on a throwaway copy: `unknown` says why a touched snapshot cannot cover them. */
  scope: { learnedFrom: string; tables: string[]; unknown: string | null };
  fingerprint: { tables: number; fingerprint: Fingerprint };
  backup: SnapshotRef & { file: string; revision: string | null; scope?: 'full' | 'touched' };
  /** `now`: the revision the database is at once the step has ended. */
  apply: { now: string | null };
  down: { now: string | null };
  hook: { exitCode: number | null; signal: NodeJS.Signals | null; timedOut: boolean; outputTail: string };
  health: { attempts: number; failing: CheckResult[]; tolerated?: string[]; interrupted?: true };
  integrity: IntegrityReport;
  /** After `rollback --to`: the live schema against the one recorded when the target revision was applied. */
  schema: { target: string | null; compared: boolean; added: string[]; removed: string[]; changed: string[]; columnOrder: string[] };
  restore: RestoreReport & { snapshot: SnapshotRef; revision: string | null };
  journal: Record<string, unknown>;
}

export interface ErrorDetail {
  error: string;
  code?: string;
  failure?: unknown;
}

type EndOf<S extends StepName> =
  | ({ type: 'step-end'; step: S; outcome: 'ok'; durationMs: number; detail?: StepPayloads[S] } & Where)
  | ({ type: 'step-end'; step: S; outcome: 'failed'; durationMs: number; detail?: StepPayloads[S] | ErrorDetail } & Where);

export type StepEnd = { [S in StepName]: EndOf<S> }[StepName];

export type RunEvent =
  | { type: 'run-start'; header: RunHeader }
  | ({ type: 'step-start'; detail?: Record<string, unknown> } & StepRef)
  | StepEnd
  | ({ type: 'note'; message: string; detail?: Record<string, unknown> } & StepRef)
  /** Frequent updates (dump progress); shown, not journaled. */
  | ({ type: 'progress'; message: string; detail?: Record<string, unknown> } & StepRef)
  | { type: 'run-end'; outcome: RunOutcome };

export type RunListener = (event: RunEvent) => void | Promise<void>;

export class RunEvents {
  private readonly listeners: RunListener[] = [];
  private delivered: Promise<void> = Promise.resolve();

  on(listener: RunListener): void {
    this.listeners.push(listener);
  }

  /**
   * Waits for every listener, so a journaled step is durable before the run
   * goes on. Events are delivered one at a time, in order, even from steps
   * that run side by side (the fingerprint and the dump).
   */
  emit(event: RunEvent): Promise<void> {
    const delivery = this.delivered.then(async () => {
      for (const listener of this.listeners) await listener(event);
    });
    this.delivered = delivery.catch(() => {});
    return delivery;
  }

  /** Run `work` as a step: it ends ok when the work returns, failed when it throws. */
  step<S extends StepName, T>(ref: { step: S } & Where, work: () => Promise<T>, describe?: (result: T) => StepPayloads[S]): Promise<T> {
    return this.judged(ref, work, (result) => ({ ok: true, detail: describe?.(result) }));
  }

  /**
   * Run `work` as a step whose outcome is judged from what it returns (a
   * health report, an integrity report, a hook's exit). Whatever happens, the
   * step that started ends: a throw ends it failed, with the error.
   */
  async judged<S extends StepName, T>(
    ref: { step: S } & Where,
    work: () => Promise<T>,
    judge: (result: T) => { ok: boolean; detail?: StepPayloads[S] | undefined },
    startDetail?: Record<string, unknown>,
  ): Promise<T> {
    const started = performance.now();
    await this.emit({ type: 'step-start', ...ref, ...(startDetail ? { detail: startDetail } : {}) });
    let end: { outcome: 'ok' | 'failed'; detail: StepPayloads[S] | ErrorDetail | undefined } = { outcome: 'failed', detail: { error: 'the step did not finish' } };
    try {
      const result = await work();
      const verdict = judge(result);
      end = { outcome: verdict.ok ? 'ok' : 'failed', detail: verdict.detail };
      return result;
    } catch (error) {
      end = { outcome: 'failed', detail: errorDetail(error) };
      throw error;
    } finally {
      const event = { type: 'step-end', ...ref, outcome: end.outcome, durationMs: Math.round(performance.now() - started) } as StepEnd;
      if (end.detail !== undefined) event.detail = end.detail as StepEnd['detail'];
      await this.emit(event);
    }
  }
}

export function errorDetail(error: unknown): ErrorDetail {
  const detail: ErrorDetail = { error: error instanceof Error ? error.message : String(error) };
  if (typeof error !== 'object' || error === null) return detail;
  if ('failure' in error && error.failure) detail.failure = error.failure;
  if ('code' in error && typeof error.code === 'string') detail.code = error.code;
  return detail;
}
