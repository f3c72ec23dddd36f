import { z } from 'zod';
import { Sha256 } from './meta.ts';
import { ResourceName } from './names.ts';
import { HostSpec, SiteEndpoints, SiteSpec } from './site.ts';
import { SoftwareProfileSpec } from './software-profile.ts';

/**
 * What a site operation works from, resolved from the inventory when it starts: specs and secret *references* only,
 * so that workflow histories never carry a credential.
 */
export const SitePlan = z.object({
  site: ResourceName,
  spec: SiteSpec,
  profile: z.object({ name: ResourceName, version: z.string(), spec: SoftwareProfileSpec }),
});
export type SitePlan = z.infer<typeof SitePlan>;

/** The OS image a host is deployed with: where Ironic fetches it, and the digest it verifies. */
export const OsImage = z.object({ url: z.url(), sha256: Sha256 });
export type OsImage = z.infer<typeof OsImage>;

/** One host through Ironic: enrolled under `<site>-<host>` so that names never collide across sites. */
export const ProvisionHostInput = z.object({
  site: ResourceName,
  ironicUrl: z.url(),
  host: HostSpec,
  image: OsImage,
  /** What Ironic's ramdisk deploy boots (the redfish hardware type needs it): the site's endpoints say. */
  deployImages: SiteEndpoints.shape.ironicDeployImages,
});
export type ProvisionHostInput = z.infer<typeof ProvisionHostInput>;

export const ProvisionedHost = z.object({
  host: z.string(),
  node: z.string(),
  nodeUuid: z.string(),
  provisionState: z.string(),
});
export type ProvisionedHost = z.infer<typeof ProvisionedHost>;

export function ironicNodeName(site: string, host: string): string {
  return `${site}-${host}`;
}
