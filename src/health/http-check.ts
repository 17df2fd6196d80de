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
          ...requestBody(spec),
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

/** A string is sent as it is; any other JSON value as JSON, said so unless the headers name a content-type. */
function requestBody(spec: HttpHealthCheck): { headers: Record<string, string>; body?: string } {
  if (spec.body === undefined) return { headers: spec.headers };
  if (typeof spec.body === 'string') return { headers: spec.headers, body: spec.body };
  const typed = Object.keys(spec.headers).some((name) => name.toLowerCase() === 'content-type');
  return { headers: typed ? spec.headers : { ...spec.headers, 'content-type': 'application/json' }, body: JSON.stringify(spec.body) };
}

/** fetch says only "fetch failed"; the reason (ECONNREFUSED, a timeout, a DNS error) is in its cause. */
function describeCause(cause: unknown): string | undefined {
  if (!(cause instanceof Error)) return undefined;
  const code = (cause as { code?: string }).code;
  const inner = (cause as { errors?: unknown[] }).errors?.map((e) => (e as { code?: string }).code).filter(Boolean);
  return [code, ...(inner ?? [])].filter(Boolean).join(', ') || cause.message;
}
