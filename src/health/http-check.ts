import type { HttpHealthCheck } from '../config/types.js';
import type { CheckOutcome, HealthCheck } from './check.js';

export function httpCheck(spec: HttpHealthCheck): HealthCheck {
  return {
    kind: 'http',
    name: spec.name,
    async run(): Promise<CheckOutcome> {
      try {
        const response = await fetch(spec.url, {
          method: spec.method,
          headers: spec.headers,
          ...(spec.body === undefined ? {} : { body: spec.body }),
          signal: AbortSignal.timeout(spec.timeoutSeconds * 1000),
          redirect: 'manual',
        });
        const body = (await response.text()).slice(0, 200);
        return { ok: response.status === spec.expectStatus, evidence: `${spec.method} ${spec.url} → ${response.status} (expected ${spec.expectStatus}) ${body}`.trim() };
      } catch (error) {
        const cause = (error as { cause?: { code?: string } }).cause?.code;
        return { ok: false, evidence: `${spec.method} ${spec.url} failed: ${cause ?? (error as Error).message}` };
      }
    },
  };
}
