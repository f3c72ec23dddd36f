/**
 * The BPA's own resources: the artifacts it holds, install jobs over SSH, per-host progress, what each host has
 * installed, and kubeadm clusters (bring-up, membership, upgrade, reset). Shared by the BPA (src/bpa), its client
 * (src/clients/bpa) and the BPM activities.
 */
import { z } from 'zod';
import { ArtifactSpec } from './artifact.ts';
import { Sha256, SecretRef, SemVer } from './meta.ts';
import { HostAddress } from './network.ts';
import { ResourceName } from './names.ts';
import { BinaryPackage, uniqueNames } from './software-profile.ts';

/** An artifact the BPA holds, as it lists it. */
export const BpaArtifact = ArtifactSpec.extend({ createdAt: z.string() });
export type BpaArtifact = z.infer<typeof BpaArtifact>;

/** Where a resumable upload stands: `offset` bytes are on the BPA's disk; complete once the artifact is visible. */
export const UploadStatus = z.object({
  sha256: Sha256,
  size: z.number().int().nonnegative(),
  offset: z.number().int().nonnegative(),
  complete: z.boolean(),
});
export type UploadStatus = z.infer<typeof UploadStatus>;

/** A compute node as the BPA reaches it; the key is a reference, resolved only where the connection is made. */
export const BpaHost = z.strictObject({
  name: ResourceName,
  address: HostAddress,
  port: z.number().int().min(1).max(65535).default(22),
  user: z.string().min(1).max(64).default('root'),
  keyRef: SecretRef,
});
export type BpaHost = z.infer<typeof BpaHost>;

export const JobAction = z.enum(['install', 'rollback']);
export type JobAction = z.infer<typeof JobAction>;

/** A job id chosen by the caller makes starting it idempotent: a retried start finds the job it already started. */
export const JobId = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]*$/, 'must be letters, digits, ".", "_" or "-"');

/**
 * Install: every package, in order, on every host. Rollback: each package listed (the version being given up) goes
 * back to the version the host had before it; a host no longer at that version is left alone, so that a rollback
 * repeated after a crash does not go back twice.
 */
export const InstallJobSpec = z
  .strictObject({
    id: JobId.optional(),
    action: JobAction.default('install'),
    hosts: z.array(BpaHost).min(1).max(10_000),
    packages: z.array(BinaryPackage).min(1).max(200),
    /** Hosts worked on at once; the BPA's own default when absent. */
    parallelism: z.number().int().min(1).max(1000).optional(),
  })
  .superRefine((spec, ctx) => {
    uniqueNames(spec.hosts, 'hosts', ctx);
    uniqueNames(spec.packages, 'packages', ctx);
  });
export type InstallJobSpec = z.input<typeof InstallJobSpec>;
export type InstallJobSpecParsed = z.infer<typeof InstallJobSpec>;

export const PackageOutcome = z.enum(['installed', 'skipped', 'rolled-back', 'failed']);
export type PackageOutcome = z.infer<typeof PackageOutcome>;

export const PackageResult = z.object({
  name: z.string(),
  version: z.string(),
  /** The version on the host before this job, when there was one. */
  from: z.string().optional(),
  outcome: PackageOutcome,
});
export type PackageResult = z.infer<typeof PackageResult>;

export const HostState = z.enum(['pending', 'running', 'succeeded', 'failed']);
export type HostState = z.infer<typeof HostState>;

export const HostProgress = z.object({
  host: z.string(),
  state: HostState,
  /** What the host is doing now, e.g. "install kubelet 1.34.2 (attempt 2)". */
  step: z.string().optional(),
  attempts: z.number().int().nonnegative(),
  packages: z.array(PackageResult),
  error: z.string().optional(),
});
export type HostProgress = z.infer<typeof HostProgress>;

export const JobState = z.enum(['pending', 'running', 'succeeded', 'failed']);
export type JobState = z.infer<typeof JobState>;

export const JobSummary = z.object({
  pending: z.number().int(),
  running: z.number().int(),
  succeeded: z.number().int(),
  failed: z.number().int(),
});
export type JobSummary = z.infer<typeof JobSummary>;

export const InstallJob = z.object({
  id: z.string(),
  kind: z.enum(['install', 'cluster']),
  action: JobAction,
  state: JobState,
  createdAt: z.string(),
  finishedAt: z.string().optional(),
  summary: JobSummary,
  hosts: z.array(HostProgress),
  error: z.string().optional(),
});
export type InstallJob = z.infer<typeof InstallJob>;

/** One line of a job's event stream (NDJSON). */
export const JobEvent = z.discriminatedUnion('type', [
  z.object({ type: z.literal('host'), jobId: z.string(), progress: HostProgress }),
  z.object({ type: z.literal('step'), jobId: z.string(), step: z.string() }),
  z.object({
    type: z.literal('done'),
    jobId: z.string(),
    state: JobState,
    summary: JobSummary,
    /**
     * The job as it ended, so that a waiting client needs no second request for it (a round trip per host patched,
     * at a fleet's scale). Optional: a BPA older than it sends none, and its client then reads the job.
     */
    job: InstallJob.optional(),
  }),
]);
export type JobEvent = z.infer<typeof JobEvent>;

/** What one host has installed of one package, as recorded on the host and in the BPA's job store. */
export const InstalledPackage = z.object({
  host: z.string(),
  name: z.string(),
  version: z.string(),
  sha256: Sha256,
  at: z.string(),
});
export type InstalledPackage = z.infer<typeof InstalledPackage>;

export const ClusterHost = BpaHost.extend({ role: z.enum(['control-plane', 'worker']) });
export type ClusterHost = z.infer<typeof ClusterHost>;

/**
 * A kubeadm cluster without Cluster-API. Posted for a new name, it is brought up: the packages (kubeadm, kubelet, a
 * container runtime, ...) on every host, `kubeadm init` on the first control-plane host, then `kubeadm join` on the
 * other control-plane hosts and the workers, one after another, and the admin kubeconfig kept. Posted again with other
 * hosts, the cluster is reconciled to them: hosts added get the packages and join, hosts removed are reset, the
 * others are left alone. The endpoint, the CIDRs and the version cannot change that way (the version is an upgrade).
 */
export const ClusterSpec = z
  .strictObject({
    name: ResourceName,
    kubernetesVersion: SemVer,
    controlPlaneEndpoint: z.strictObject({
      host: HostAddress,
      port: z.number().int().min(1).max(65535).default(6443),
    }),
    podCidr: z.string().min(1).max(64).default('10.244.0.0/16'),
    serviceCidr: z.string().min(1).max(64).default('10.96.0.0/12'),
    hosts: z.array(ClusterHost).min(1).max(1000),
    packages: z.array(BinaryPackage).min(1).max(50),
    parallelism: z.number().int().min(1).max(1000).optional(),
  })
  .superRefine((spec, ctx) => {
    uniqueNames(spec.hosts, 'hosts', ctx);
    uniqueNames(spec.packages, 'packages', ctx);
    if (!spec.hosts.some((h) => h.role === 'control-plane')) {
      ctx.addIssue({ code: 'custom', path: ['hosts'], message: 'needs at least one control-plane host' });
    }
  });
export type ClusterSpec = z.input<typeof ClusterSpec>;
export type ClusterSpecParsed = z.infer<typeof ClusterSpec>;

/**
 * `kubeadm upgrade apply` on the first control-plane host, then `kubeadm upgrade node` on the other control-plane
 * hosts and the workers, one after another; `packages` (the kubeadm and kubelet of that version, typically) go on
 * every host first.
 */
export const ClusterUpgrade = z
  .strictObject({
    kubernetesVersion: SemVer,
    packages: z.array(BinaryPackage).max(50).optional(),
  })
  .superRefine((upgrade, ctx) => {
    uniqueNames(upgrade.packages ?? [], 'packages', ctx);
  });
export type ClusterUpgrade = z.input<typeof ClusterUpgrade>;
export type ClusterUpgradeParsed = z.infer<typeof ClusterUpgrade>;

/** What the cluster's latest job does: a reset ends with the cluster forgotten (404). */
export const ClusterOperation = z.enum(['bring-up', 'reconcile', 'upgrade', 'reset']);
export type ClusterOperation = z.infer<typeof ClusterOperation>;

export const ClusterStatus = z.object({
  name: z.string(),
  /** The latest job on the cluster (GET /v1/jobs/:id for its hosts' progress). */
  jobId: z.string(),
  operation: ClusterOperation,
  state: JobState,
  /** That job's steps done so far, e.g. "packages", "init host-001", "join host-002", "upgrade node host-002". */
  steps: z.array(z.string()),
  kubeconfigReady: z.boolean(),
  /** What the cluster runs: changed by an upgrade once every host has been upgraded. */
  kubernetesVersion: z.string(),
  /** The hosts in the cluster now (initialised or joined, not reset). */
  hosts: z.array(z.object({ name: z.string(), role: ClusterHost.shape.role })),
  error: z.string().optional(),
});
export type ClusterStatus = z.infer<typeof ClusterStatus>;

/** An SSH key handed to the BPA: write-only, stored in its secrets folder, never returned. */
export const BpaSecret = z.strictObject({
  type: z.literal('ssh-key'),
  stringData: z.strictObject({
    privateKey: z
      .string()
      .min(1)
      .max(64 * 1024),
    passphrase: z.string().optional(),
  }),
});
export type BpaSecret = z.infer<typeof BpaSecret>;
