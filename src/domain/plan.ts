import { z } from 'zod';
import { Sha256 } from './meta.ts';
import { ResourceName } from './names.ts';
import { HostSpec, SiteEndpoints, SiteSpec } from './site.ts';
import { BinaryPackage, SoftwareProfileSpec } from './software-profile.ts';

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

export { ironicNodeName, kubeconfigSecretName } from './keys.ts';

/** What a site has installed and what a patch takes it to, resolved when the patch starts. */
export const PatchPlan = z.object({
  /** The site with the profile it is patched to. */
  plan: SitePlan,
  installed: z.object({ name: ResourceName, version: z.string(), spec: SoftwareProfileSpec }),
  /**
   * The size in bytes of each artifact of the profile patched to, by sha256: whether what the site lacks is sent
   * within a workflow task or as a long step. Absent from plans loaded before it existed.
   */
  artifactBytes: z.record(z.string(), z.number().int().nonnegative()).optional(),
});
export type PatchPlan = z.infer<typeof PatchPlan>;

/**
 * One host's maintenance in one heartbeating activity that resumes from the steps it has done: cordon, drain, the
 * packages through the BPA (installed, or rolled back to what the host had), a reboot through Ironic when a package
 * needs one, the node Ready again, uncordon, verify, record.
 */
export const HostPatchInput = z.object({
  site: ResourceName,
  host: ResourceName,
  action: z.enum(['install', 'rollback']),
  packages: z.array(BinaryPackage),
  reboot: z.boolean(),
  /** The application cluster's kubeconfig, by inventory secret name. */
  kubeconfigSecret: z.string(),
  bpaUrl: z.url(),
  ironicUrl: z.url(),
  drainTimeoutSeconds: z.number().int().positive().default(600),
});
export type HostPatchInput = z.input<typeof HostPatchInput>;

export const HostPatchResult = z.object({
  host: z.string(),
  node: z.string(),
  /** The host's package versions afterwards, as the BPA recorded them. */
  packages: z.record(z.string(), z.string()),
  rebooted: z.boolean(),
});
export type HostPatchResult = z.infer<typeof HostPatchResult>;

/** An installed site as it should be (its spec, with the profile it runs) and the hosts it has (its status). */
export const InstalledSitePlan = z.object({
  plan: SitePlan,
  installedHosts: z.array(z.string()),
  kubernetesVersion: z.string(),
});
export type InstalledSitePlan = z.infer<typeof InstalledSitePlan>;
