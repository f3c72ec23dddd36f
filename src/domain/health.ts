import { z } from 'zod';
import { ResourceName } from './names.ts';

/** One endpoint of a site's infra-local-controller (Ironic, BPA, bootstrap API server) to probe. */
export const SiteEndpoint = z.strictObject({
  name: ResourceName,
  url: z.url({ protocol: /^https?$/ }),
});
export type SiteEndpoint = z.infer<typeof SiteEndpoint>;

export const SiteHealthCheckRequest = z.strictObject({
  endpoints: z.array(SiteEndpoint).min(1).max(32),
});
export type SiteHealthCheckRequest = z.infer<typeof SiteHealthCheckRequest>;

export const SiteHealthCheckInput = SiteHealthCheckRequest.extend({ site: ResourceName });
export type SiteHealthCheckInput = z.infer<typeof SiteHealthCheckInput>;

export const EndpointProbe = z.object({
  name: z.string(),
  url: z.string(),
  reachable: z.boolean(),
  httpStatus: z.number().int().optional(),
  latencyMs: z.number(),
  error: z.string().optional(),
});
export type EndpointProbe = z.infer<typeof EndpointProbe>;

export const SiteHealthReport = z.object({
  site: z.string(),
  healthy: z.boolean(),
  checkedAt: z.string(),
  probes: z.array(EndpointProbe),
});
export type SiteHealthReport = z.infer<typeof SiteHealthReport>;
