import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.ts';
import type { SiteHealthCheckInput, SiteHealthReport } from '../domain/health.ts';

const { probeEndpoint } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { maximumAttempts: 3 },
});

/** Probe every endpoint of a site's local controller at once; the site is healthy when all answer. */
export async function siteHealthCheck(input: SiteHealthCheckInput): Promise<SiteHealthReport> {
  const probes = await Promise.all(input.endpoints.map((endpoint) => probeEndpoint(endpoint)));
  return {
    site: input.site,
    healthy: probes.every((p) => p.reachable),
    checkedAt: new Date().toISOString(),
    probes,
  };
}
