import type { CheckContext, HealthCheck } from './check.js';

export interface CheckResult {
  kind: HealthCheck['kind'];
  name: string;
  ok: boolean;
  evidence: string;
  /** Failing before the change too (see CheckOutcome): reported, not held against it. */
  alreadyFailing?: boolean;
  durationMs: number;
}

export interface HealthReport {
  healthy: boolean;
  attempts: number;
  /** The last attempt's results. */
  results: CheckResult[];
  /** A signal stopped the checks before an attempt finished: never healthy, results are the last attempt that ran (none before the first). */
  interrupted?: true;
}

export interface HealthRetry {
  /** Keep retrying failing checks until this many seconds have passed; 0 means one attempt. */
  timeoutSeconds: number;
  intervalSeconds: number;
  /** How long a single attempt (timeoutSeconds 0) may take: the configured health timeout; 0 or none, no limit. */
  attemptSeconds?: number;
  /** Checks already failing before the change (allowed by --allow-unhealthy): reported, not held against it. */
  tolerate?: ReadonlySet<string>;
  onAttempt?: (attempt: number, results: CheckResult[]) => void | Promise<void>;
}

async function attempt(checks: HealthCheck[], ctx: CheckContext): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const check of checks) {
    if (ctx.signal?.aborted) break;
    const started = performance.now();
    const outcome = await check.run(ctx);
    results.push({ kind: check.kind, name: check.name, ...outcome, durationMs: Math.round(performance.now() - started) });
  }
  return results;
}

const sleep = (ms: number, signal: AbortSignal | undefined): Promise<void> =>
  new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    }, { once: true });
  });

/**
 * Run every check; while any fails, retry every interval until the timeout is
 * used up; but not when a failing check cannot change by waiting (structure):
 * the outcome is then settled, and waiting out the timeout would only delay it.
 * An SQL check still running when the timeout runs out is cancelled (fails).
 */
export async function runHealthChecks(checks: HealthCheck[], ctx: CheckContext, retry: HealthRetry): Promise<HealthReport> {
  const started = performance.now();
  const deadline = started + retry.timeoutSeconds * 1000;
  const limit = retry.timeoutSeconds > 0 ? retry.timeoutSeconds : (retry.attemptSeconds ?? 0);
  const checking: CheckContext = limit > 0 ? { ...ctx, deadline: started + limit * 1000 } : ctx;
  const final = new Set(checks.filter((check) => check.changesByWaiting === false).map((check) => check.name));
  let attempts = 0;
  let last: CheckResult[] = [];
  for (;;) {
    const results = await attempt(checks, checking);
    // checks a signal kept from running did not pass: the report is the last attempt that ran
    if (results.length < checks.length) return { healthy: false, attempts, results: last, interrupted: true };
    attempts++;
    last = results;
    await retry.onAttempt?.(attempts, results);
    const held = results.filter((r) => !r.ok && r.alreadyFailing !== true && retry.tolerate?.has(r.name) !== true);
    const healthy = held.length === 0;
    const settled = held.some((r) => final.has(r.name));
    const remaining = deadline - performance.now();
    if (healthy || settled || remaining <= 0 || ctx.signal?.aborted) return { healthy, attempts, results };
    await sleep(Math.min(retry.intervalSeconds * 1000, remaining), ctx.signal);
  }
}
