import { z } from 'zod';
import { apiVersion, ObjectMeta, SecretRef, SemVer } from './meta.ts';
import { Cidr, cidrsOverlap, HostAddress, MacAddress } from './network.ts';
import { ResourceName } from './names.ts';

export const HostRole = z.enum(['control-plane', 'worker']);
export type HostRole = z.infer<typeof HostRole>;

/**
 * Where Ironic reaches a host's BMC; credentials stay in a Secret. `fake-hardware://` (anything after it is ignored)
 * selects Ironic's fake-hardware type, whose driver calls only sleep: for labs and CI, never a real server.
 */
export const BmcSpec = z.strictObject({
  address: z
    .string()
    .regex(
      /^(?:(?:ipmi|redfish|redfish\+https?|idrac-redfish|ilo5-redfish):\/\/\S+|fake-hardware:\/\/\S*)$/,
      'must be an ipmi://, redfish:// or fake-hardware:// URL',
    ),
  credentialsRef: SecretRef,
  /** Skip TLS verification of the BMC (self-signed certificates are common at the edge). */
  disableCertificateVerification: z.boolean().default(false),
});

export const RootDeviceHints = z.strictObject({
  deviceName: z.string().optional(),
  serialNumber: z.string().optional(),
  minSizeGigabytes: z.number().int().positive().optional(),
  rotational: z.boolean().optional(),
});

export const SshAccess = z.strictObject({
  address: HostAddress,
  port: z.number().int().min(1).max(65535).default(22),
  user: z.string().min(1).max(64).default('root'),
  keyRef: SecretRef,
});

export const HostSpec = z.strictObject({
  name: ResourceName,
  role: HostRole,
  bmc: BmcSpec,
  bootMacAddress: MacAddress,
  rootDeviceHints: RootDeviceHints.optional(),
  ssh: SshAccess,
});
export type HostSpec = z.infer<typeof HostSpec>;

/** How a site's infra-local-controller is reached. */
export const SiteEndpoints = z.strictObject({
  ironicUrl: z.url({ protocol: /^https?$/ }),
  bpaUrl: z.url({ protocol: /^https?$/ }),
  bpaTokenRef: SecretRef.optional(),
  /** The site's bootstrap cluster (Cluster-API and metal3 run there), when the site uses Cluster-API. */
  bootstrapKubeconfigRef: SecretRef.optional(),
  /**
   * The kernel and ramdisk Ironic boots to deploy a host (its deploy_kernel/deploy_ramdisk), as URLs Ironic can fetch
   * (http(s):// or file:// under its allowed paths). The redfish hardware type needs them; fake-hardware does not.
   */
  ironicDeployImages: z.strictObject({ kernel: z.url(), ramdisk: z.url() }).optional(),
});

export const ClusterSpec = z.strictObject({
  kubernetesVersion: SemVer,
  controlPlaneEndpoint: z.strictObject({ host: HostAddress, port: z.number().int().min(1).max(65535).default(6443) }),
  podCidr: Cidr.default('10.244.0.0/16'),
  serviceCidr: Cidr.default('10.96.0.0/12'),
  cni: z.enum(['flannel', 'calico', 'cilium', 'ovn4nfv']).default('flannel'),
  /** cluster-api: Cluster-API + metal3 objects on the bootstrap cluster; kubeadm: the BPA runs kubeadm on the hosts. */
  provisioner: z.enum(['cluster-api', 'kubeadm']).default('kubeadm'),
});

export const ProfileRef = z.strictObject({ name: ResourceName, version: SemVer });
export type ProfileRef = z.infer<typeof ProfileRef>;

export const SiteSpec = z
  .strictObject({
    location: z.string().max(256).optional(),
    /** IANA time zone (Europe/Paris): rollouts read their maintenance window in it; UTC when absent. */
    timeZone: z
      .string()
      .max(64)
      .refine(
        (tz) => {
          try {
            new Intl.DateTimeFormat('en', { timeZone: tz });
            return true;
          } catch {
            return false;
          }
        },
        { message: 'must be an IANA time zone such as Europe/Paris or UTC' },
      )
      .optional(),
    /** central: the global worker serves the site's task queue; local: a worker at the site dials out. */
    agentMode: z.enum(['central', 'local']).default('central'),
    endpoints: SiteEndpoints,
    cluster: ClusterSpec,
    softwareProfile: ProfileRef,
    hosts: z.array(HostSpec).min(1).max(1000),
  })
  .superRefine((spec, ctx) => {
    const seen = { names: new Map<string, number>(), macs: new Map<string, number>() };
    spec.hosts.forEach((host, i) => {
      const name = seen.names.get(host.name);
      if (name !== undefined) {
        ctx.addIssue({ code: 'custom', path: ['hosts', i, 'name'], message: `duplicates hosts[${name}].name` });
      } else seen.names.set(host.name, i);
      const mac = seen.macs.get(host.bootMacAddress);
      if (mac !== undefined) {
        ctx.addIssue({
          code: 'custom',
          path: ['hosts', i, 'bootMacAddress'],
          message: `duplicates hosts[${mac}].bootMacAddress`,
        });
      } else seen.macs.set(host.bootMacAddress, i);
    });
    const controlPlanes = spec.hosts.filter((h) => h.role === 'control-plane').length;
    if (controlPlanes !== 1 && controlPlanes !== 3) {
      ctx.addIssue({
        code: 'custom',
        path: ['hosts'],
        message: `needs exactly 1 or 3 control-plane hosts (etcd quorum), has ${controlPlanes}`,
      });
    }
    if (cidrsOverlap(spec.cluster.podCidr, spec.cluster.serviceCidr)) {
      ctx.addIssue({ code: 'custom', path: ['cluster', 'serviceCidr'], message: 'overlaps cluster.podCidr' });
    }
    if (spec.cluster.provisioner === 'cluster-api' && !spec.endpoints.bootstrapKubeconfigRef) {
      ctx.addIssue({
        code: 'custom',
        path: ['endpoints', 'bootstrapKubeconfigRef'],
        message: 'is required when cluster.provisioner is cluster-api',
      });
    }
  });
export type SiteSpec = z.infer<typeof SiteSpec>;

/** What the inventory knows of one host of a site, written as operations go. */
export const HostStatus = z.object({
  state: z.string(),
  packages: z.record(z.string(), z.string()).optional(),
  /** The operation step that last rebooted the host: a retry of that step does not reboot it again. */
  rebootedBy: z.string().optional(),
});
export type HostStatus = z.infer<typeof HostStatus>;

export const SiteStatus = z.object({
  phase: z.enum(['Pending', 'Installing', 'Ready', 'Patching', 'Upgrading', 'Failed', 'Deleting']).default('Pending'),
  installedProfile: ProfileRef.optional(),
  kubernetesVersion: z.string().optional(),
  operation: z.object({ workflowId: z.string(), type: z.string() }).optional(),
  message: z.string().optional(),
  hosts: z.record(z.string(), HostStatus).optional(),
});
export type SiteStatus = z.infer<typeof SiteStatus>;

export const Site = z.strictObject({
  apiVersion: z.literal(apiVersion),
  kind: z.literal('Site'),
  metadata: ObjectMeta,
  spec: SiteSpec,
  status: SiteStatus.optional(),
});
export type Site = z.infer<typeof Site>;
