import type { HttpHealthCheck } from '../config/types.js';
import type { CheckContext, CheckOutcome, HealthCheck } from './check.js';

export function httpCheck(spec: HttpHealthCheck): HealthCheck {
  return {
    kind: 'http',
    name: spec.name,
    async run(ctx: CheckContext): Promise<CheckOutcome> {
      const timeout = AbortSignal.timeout(spec.timeoutSeconds * 1000);
      try {
        const response = await fetch(spec.url, {
          method: spec.method,
          headers: spec.headers,
          ...(spec.body === undefined ? {} : { body: spec.body }),
          signal: ctx.signal ? AbortSignal.any([timeout, ctx.signal]) : timeout,
          redirect: 'manual',
        });
        const body = (await response.text()).slice(0, 200);
        return { ok: response.status === spec.expectStatus, evidence: `${spec.method} ${spec.url} → ${response.status} (expected ${spec.expectStatus}) ${body}`.trim() };
      } catch (error) {
        const cause = describeCause((error as { cause?: unknown }).cause);
        return { ok: false, evidence: `${spec.method} ${spec.url} failed: ${cause ?? (error as Error).message}` };
      }
    },
  };
}

/** fetch says only "fetch failed"; the reason (ECONNREFUSED, a timeout, a DNS error) is in its cause. */
function describeCause(cause: unknown): string | undefined {
  if (!(cause instanceof Error)) return undefined;
  const code = (cause as { code?: string }).code;
  const inner = (cause as { errors?: unknown[] }).errors?.map((e) => (e as { code?: string }).code).filter(Boolean);
  return [code, ...(inner ?? [])].filter(Boolean).join(', ') || cause.message;
}
