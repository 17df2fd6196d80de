import type { RunHeader, RunOutcome } from '../journal/record.js';

export type StepName =
  | 'plan'
  | 'lock'
  | 'preflight'
  | 'fingerprint'
  | 'backup'
  | 'hook'
  | 'apply'
  | 'health'
  | 'down'
  | 'integrity'
  | 'restore'
  | 'journal';

export interface StepRef {
  step: StepName;
  revision?: string;
  /** What else the step is about: a hook's name, a health phase. */
  subject?: string;
}

export const stepLabel = (ref: StepRef): string => [ref.step, ref.revision ?? ref.subject].filter(Boolean).join(' ');

export type RunEvent =
  | { type: 'run-start'; header: RunHeader }
  | ({ type: 'step-start'; detail?: Record<string, unknown> } & StepRef)
  | ({ type: 'step-end'; outcome: string; durationMs: number; detail?: Record<string, unknown> } & StepRef)
  | ({ type: 'note'; message: string; detail?: Record<string, unknown> } & StepRef)
  /** Frequent updates (dump progress); shown, not journaled. */
  | ({ type: 'progress'; message: string; detail?: Record<string, unknown> } & StepRef)
  | { type: 'run-end'; outcome: RunOutcome };

export type RunListener = (event: RunEvent) => void | Promise<void>;

/** Steps as events: the journal and the terminal output listen; the runner knows neither. */
export class RunEvents {
  private readonly listeners: RunListener[] = [];

  on(listener: RunListener): void {
    this.listeners.push(listener);
  }

  private delivered: Promise<void> = Promise.resolve();

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

  /** Run `work` as a step: start and end events around it, with its outcome and duration. */
  async step<T>(ref: StepRef, work: () => Promise<T>, describe?: (result: T) => Record<string, unknown>): Promise<T> {
    const started = performance.now();
    await this.emit({ type: 'step-start', ...ref });
    try {
      const result = await work();
      const end: RunEvent = { type: 'step-end', ...ref, outcome: 'ok', durationMs: Math.round(performance.now() - started) };
      if (describe) end.detail = describe(result);
      await this.emit(end);
      return result;
    } catch (error) {
      await this.emit({
        type: 'step-end',
        ...ref,
        outcome: 'failed',
        durationMs: Math.round(performance.now() - started),
        detail: errorDetail(error),
      });
      throw error;
    }
  }
}

export function errorDetail(error: unknown): Record<string, unknown> {
  const detail: Record<string, unknown> = { error: error instanceof Error ? error.message : String(error) };
  const failure = (error as { failure?: unknown }).failure;
  if (failure) detail.failure = failure;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string') detail.code = code;
  return detail;
}
