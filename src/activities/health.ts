import type { EndpointProbe, SiteEndpoint } from '../domain/health.ts';

export interface HealthActivityDeps {
  fetch: typeof globalThis.fetch;
  probeTimeoutMs: number;
}

/**
 * A probe reports rather than throws: an unreachable endpoint is a finding of the health check, not a reason to retry
 * the activity.
 */
export function createHealthActivities(deps: HealthActivityDeps) {
  return {
    async probeEndpoint(endpoint: SiteEndpoint): Promise<EndpointProbe> {
      const started = performance.now();
      try {
        const res = await deps.fetch(endpoint.url, { signal: AbortSignal.timeout(deps.probeTimeoutMs) });
        await res.body?.cancel();
        return {
          name: endpoint.name,
          url: endpoint.url,
          reachable: res.status < 500,
          httpStatus: res.status,
          latencyMs: Math.round(performance.now() - started),
        };
      } catch (err) {
        const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
        return {
          name: endpoint.name,
          url: endpoint.url,
          reachable: false,
          latencyMs: Math.round(performance.now() - started),
          error: `${err instanceof Error ? err.message : String(err)}${cause}`,
        };
      }
    },
  };
}
