/**
 * A site's cluster through Cluster-API and metal3 on its bootstrap cluster, after the way ICN drives them: one
 * namespace `site-<site>` holds the site's BareMetalHosts (with their BMC credential Secrets) and its Cluster-API
 * objects, all written with server-side apply so that every step can run again. The long waits are single
 * heartbeating activities over list-then-watch, which resume from their heartbeat details (what was already seen
 * done). The bootstrap cluster's kubeconfig and the BMC credentials are revealed from the secret store only for the
 * call that uses them; the application cluster's kubeconfig goes back into the store, and only its secret's name
 * leaves the activity.
 */
import { ApplicationFailure, CancelledFailure, Context } from '@temporalio/activity';
import {
  isNotFound,
  type KubeconfigSource,
  type KubeObject,
  type KubernetesClient,
  type ObjectRef,
} from '../clients/kubernetes/index.ts';
import type { SecretRef } from '../domain/meta.ts';
import { kubeconfigSecretName, type OsImage, type SitePlan } from '../domain/plan.ts';
import type { HostSpec, SiteSpec } from '../domain/site.ts';
import type { SecretRepository } from '../store/secrets.ts';
import { ClusterClients } from './cluster-clients.ts';
import { toActivityFailure } from './errors.ts';

export interface ClusterActivityDeps {
  /** A client for a kubeconfig (`kubernetesClient`), shared by the activities that use the same one at once. */
  kube: (kubeconfig: KubeconfigSource) => KubernetesClient;
  secrets: Pick<SecretRepository, 'reveal' | 'put'>;
  /**
   * Where an input that names only the site finds the site's bootstrap kubeconfig reference (the inventory's sites,
   * e.g. `store.sites`). An input's own `bootstrapKubeconfigRef` wins.
   */
  sites?: { get(name: string): Promise<{ spec: SiteSpec }> };
  /** Deadline of each wait within one attempt; past it the attempt fails retryably and the next one resumes. */
  waitTimeoutMs?: number;
  heartbeatIntervalMs?: number;
  /**
   * Where hosts fetch the profile's OS image when the caller gives no URL: by default the site's BPA, which holds
   * every artifact of the profile once it is distributed.
   */
  osImageUrl?: (plan: SitePlan) => string;
}

/** A site's bootstrap cluster: by the site's name, with its kubeconfig reference when the caller has it. */
export interface SiteTarget {
  site: string;
  bootstrapKubeconfigRef?: SecretRef;
}

export type ClusterPart = 'control-plane' | 'workers';

export interface KubernetesVersionInput extends SiteTarget {
  version: string;
  part: ClusterPart;
}

/** What a host wait reports in its heartbeat and resumes from. */
export interface HostsProgress {
  provisioned: string[];
  states: Record<string, string>;
}

export const siteNamespace = (site: string): string => `site-${site}`;
/** The Cluster-API names of a site's objects; the cluster is named after the site. */
export const clusterNames = (site: string) => ({
  cluster: site,
  controlPlane: `${site}-control-plane`,
  workers: `${site}-workers`,
  kubeconfigSecret: `${site}-kubeconfig`,
});
export const bmcSecretName = (host: string): string => `${host}-bmc-secret`;

const siteLabel = 'icn.akraino.org/site';
const roleLabel = 'icn.akraino.org/role';
const clusterNameLabel = 'cluster.x-k8s.io/cluster-name';

const api = {
  host: { apiVersion: 'metal3.io/v1alpha1', kind: 'BareMetalHost' },
  cluster: { apiVersion: 'cluster.x-k8s.io/v1beta1', kind: 'Cluster' },
  machineDeployment: { apiVersion: 'cluster.x-k8s.io/v1beta1', kind: 'MachineDeployment' },
  controlPlane: { apiVersion: 'controlplane.cluster.x-k8s.io/v1beta1', kind: 'KubeadmControlPlane' },
  configTemplate: { apiVersion: 'bootstrap.cluster.x-k8s.io/v1beta1', kind: 'KubeadmConfigTemplate' },
  metal3Cluster: { apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta1', kind: 'Metal3Cluster' },
  machineTemplate: { apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta1', kind: 'Metal3MachineTemplate' },
} as const;

/** Kubernetes and Cluster-API write versions with a leading v; the inventory accepts either. */
export const kubeVersion = (version: string): string => (version.startsWith('v') ? version : `v${version}`);

type Status = Record<string, unknown>;
const statusOf = (o: KubeObject | undefined): Status =>
  typeof o?.status === 'object' && o.status !== null ? (o.status as Status) : {};
/** A status field as text for a heartbeat, whatever its type. */
const text = (value: unknown, otherwise = ''): string =>
  typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean' ? String(value) : otherwise;
const hostState = (o: KubeObject | undefined): string =>
  (statusOf(o).provisioning as { state?: string } | undefined)?.state ?? '';

function nonRetryable(type: string, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: true });
}

/** The heartbeat of a long wait: on every observed change, and on a timer so that a quiet wait still beats. */
function heartbeats<T>(ctx: Context, intervalMs: number, initial: T) {
  let details = initial;
  ctx.heartbeat(details);
  const timer = setInterval(() => {
    ctx.heartbeat(details);
  }, intervalMs);
  return {
    get details(): T {
      return details;
    },
    beat(next: T): void {
      details = next;
      ctx.heartbeat(details);
    },
    stop(): void {
      clearInterval(timer);
    },
  };
}

export function createClusterActivities(deps: ClusterActivityDeps) {
  const waitTimeoutMs = deps.waitTimeoutMs ?? 30 * 60_000;
  const heartbeatIntervalMs = deps.heartbeatIntervalMs ?? 5_000;

  async function bootstrapRef(target: SiteTarget): Promise<string> {
    if (target.bootstrapKubeconfigRef) return target.bootstrapKubeconfigRef.name;
    if (!deps.sites) {
      throw nonRetryable(
        'Invalid',
        `site "${target.site}": no bootstrap kubeconfig reference in the input and no inventory to look it up in`,
      );
    }
    const ref = (await deps.sites.get(target.site)).spec.endpoints.bootstrapKubeconfigRef;
    if (!ref) {
      throw nonRetryable(
        'Invalid',
        `site "${target.site}" has no endpoints.bootstrapKubeconfigRef (not a Cluster-API site)`,
      );
    }
    return ref.name;
  }

  /**
   * The bootstrap clusters' clients, kept in memory while in use: a site's patch reads its bootstrap cluster once, and
   * a temporary kubeconfig file and a new client each time cost a handful of file system calls, a TLS context and a
   * handshake per site (measured: ≈ 4% of a fleet worker's main thread while 1,000 sites start).
   */
  const bootstraps = new ClusterClients(deps.kube, deps.secrets);

  /**
   * Runs `fn` with a client for the site's bootstrap cluster; its kubeconfig never leaves this process's memory.
   * Errors become ApplicationFailures (cancellation stays a cancellation).
   */
  async function onBootstrap<T>(
    target: SiteTarget,
    fn: (kube: KubernetesClient, ctx: Context) => Promise<T>,
    secrets: string[] = [],
  ): Promise<T> {
    const ctx = Context.current();
    try {
      const name = await bootstrapRef(target);
      return await bootstraps.with(name, secrets, (kube) => fn(kube, ctx));
    } catch (err) {
      if (ctx.cancellationSignal.aborted) throw new CancelledFailure('activity cancelled');
      throw toActivityFailure(err, { secrets });
    }
  }

  function imageOf(plan: SitePlan, image: OsImage | undefined): OsImage {
    if (image) return image;
    const sha256 = plan.profile.spec.osImage.sha256;
    const url =
      deps.osImageUrl?.(plan) ??
      new URL(`v1/artifacts/${sha256}/content`, plan.spec.endpoints.bpaUrl.replace(/\/?$/, '/')).toString();
    return { url, sha256 };
  }

  function labels(site: string, extra: Record<string, string> = {}): Record<string, string> {
    return { [siteLabel]: site, [clusterNameLabel]: clusterNames(site).cluster, ...extra };
  }

  const ref = (kind: keyof typeof api, site: string, name: string): ObjectRef => ({
    ...api[kind],
    name,
    namespace: siteNamespace(site),
  });

  /** A BareMetalHost deleted and gone (deprovisioned), then its BMC Secret. */
  async function removeHost(kube: KubernetesClient, ctx: Context, site: string, host: string): Promise<void> {
    const target = ref('host', site, host);
    await kube.delete(target, { waitMs: 0 });
    await waitObject(
      kube,
      ctx,
      target,
      (o) => o === undefined,
      'deleted',
      (o) => {
        ctx.heartbeat({ host, state: o === undefined ? 'gone' : hostState(o) });
      },
    );
    await kube.delete(
      { apiVersion: 'v1', kind: 'Secret', name: bmcSecretName(host), namespace: siteNamespace(site) },
      { waitMs: 0 },
    );
  }

  async function ensureNamespace(kube: KubernetesClient, site: string): Promise<void> {
    await kube.apply({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: siteNamespace(site), labels: { [siteLabel]: site } },
    });
  }

  function bareMetalHost(plan: SitePlan, host: HostSpec, image: OsImage): KubeObject {
    const hints = host.rootDeviceHints;
    return {
      ...api.host,
      metadata: {
        name: host.name,
        namespace: siteNamespace(plan.site),
        labels: labels(plan.site, { [roleLabel]: host.role }),
      },
      spec: {
        online: true,
        bootMACAddress: host.bootMacAddress,
        bootMode: 'UEFI',
        bmc: {
          address: host.bmc.address,
          credentialsName: bmcSecretName(host.name),
          disableCertificateVerification: host.bmc.disableCertificateVerification,
        },
        ...(hints ? { rootDeviceHints: hints } : {}),
        image: { url: image.url, checksum: image.sha256, checksumType: 'sha256', format: 'qcow2' },
        automatedCleaningMode: 'metadata',
      },
    };
  }

  /** Waits for `ref` to satisfy `done`, heartbeating `progress` of what it sees; the attempt's deadline bounds it. */
  async function waitObject(
    kube: KubernetesClient,
    ctx: Context,
    target: ObjectRef,
    done: (o: KubeObject | undefined) => boolean,
    description: string,
    onSeen: (o: KubeObject | undefined) => void,
  ): Promise<KubeObject | undefined> {
    return kube.waitFor(target, done, {
      timeoutMs: waitTimeoutMs,
      description,
      signal: ctx.cancellationSignal,
      onProgress: onSeen,
    });
  }

  const hostFailed = (o: KubeObject | undefined): boolean => statusOf(o).operationalStatus === 'error';

  function hostFailure(site: string, host: string, o: KubeObject | undefined): ApplicationFailure {
    const s = statusOf(o);
    const errorType = typeof s.errorType === 'string' ? s.errorType : 'error';
    const message = typeof s.errorMessage === 'string' ? s.errorMessage : '';
    return nonRetryable(
      'HostProvisioningFailed',
      `BareMetalHost ${siteNamespace(site)}/${host} (${hostState(o) || 'unknown state'}): ${errorType}: ${message}`,
    );
  }

  function workersReady(md: KubeObject | undefined): boolean {
    if (md === undefined) return false;
    const s = statusOf(md);
    const replicas = (md.spec as { replicas?: number } | undefined)?.replicas ?? 1;
    return (
      s.phase === 'Running' &&
      s.readyReplicas === replicas &&
      s.updatedReplicas === replicas &&
      typeof s.observedGeneration === 'number' &&
      s.observedGeneration >= (md.metadata.generation ?? 0)
    );
  }

  function clusterFailure(site: string, cluster: KubeObject | undefined): ApplicationFailure | undefined {
    const s = statusOf(cluster);
    if (s.phase !== 'Failed') return undefined;
    const reason = typeof s.failureReason === 'string' ? s.failureReason : 'Failed';
    const message = typeof s.failureMessage === 'string' ? s.failureMessage : 'no failureMessage';
    return nonRetryable(
      'ClusterProvisioningFailed',
      `Cluster ${siteNamespace(site)}/${site} failed (${reason}): ${message}`,
    );
  }

  return {
    /** A BareMetalHost per host, online and with its image, and its BMC credentials Secret; applying again is a no-op. */
    registerBareMetalHosts: async (plan: SitePlan, image?: OsImage): Promise<void> => {
      const target = {
        site: plan.site,
        ...(plan.spec.endpoints.bootstrapKubeconfigRef && {
          bootstrapKubeconfigRef: plan.spec.endpoints.bootstrapKubeconfigRef,
        }),
      };
      const revealed: string[] = [];
      await onBootstrap(
        target,
        async (kube, ctx) => {
          await ensureNamespace(kube, plan.site);
          const osImage = imageOf(plan, image);
          for (const host of plan.spec.hosts) {
            const credentials = await deps.secrets.reveal(host.bmc.credentialsRef.name);
            const { username, password } = credentials.data;
            if (credentials.type !== 'bmc-credentials' || username === undefined || password === undefined) {
              throw nonRetryable(
                'Invalid',
                `host "${host.name}": secret "${host.bmc.credentialsRef.name}" is not a bmc-credentials secret with username and password`,
              );
            }
            revealed.push(password);
            await kube.apply({
              apiVersion: 'v1',
              kind: 'Secret',
              type: 'Opaque',
              metadata: {
                name: bmcSecretName(host.name),
                namespace: siteNamespace(plan.site),
                labels: labels(plan.site),
              },
              data: {
                username: Buffer.from(username).toString('base64'),
                password: Buffer.from(password).toString('base64'),
              },
            });
            await kube.apply(bareMetalHost(plan, host, osImage));
            ctx.heartbeat({ registered: host.name });
          }
        },
        revealed,
      );
    },

    /** Until every host is provisioned; a host the operator puts in error fails the step for good, with its message. */
    waitHostsProvisioned: async (input: SiteTarget & { hosts: string[] }): Promise<void> => {
      await onBootstrap(input, async (kube, ctx) => {
        const resumed = ctx.info.heartbeatDetails as Partial<HostsProgress> | undefined;
        const progress: HostsProgress = {
          provisioned: (resumed?.provisioned ?? []).filter((h) => input.hosts.includes(h)),
          states: { ...resumed?.states },
        };
        const hb = heartbeats(ctx, heartbeatIntervalMs, progress);
        const stop = new AbortController();
        const signal = AbortSignal.any([ctx.cancellationSignal, stop.signal]);
        try {
          await Promise.all(
            input.hosts
              .filter((host) => !progress.provisioned.includes(host))
              .map(async (host) => {
                const seen = await kube.waitFor(
                  ref('host', input.site, host),
                  (o) => hostState(o) === 'provisioned' || hostFailed(o),
                  {
                    timeoutMs: waitTimeoutMs,
                    description: 'provisioned',
                    signal,
                    onProgress: (o) => {
                      const state = o === undefined ? 'absent' : hostState(o) || 'new';
                      if (progress.states[host] === state) return;
                      progress.states[host] = state;
                      hb.beat(progress);
                    },
                  },
                );
                if (hostFailed(seen)) throw hostFailure(input.site, host, seen);
                progress.provisioned.push(host);
                hb.beat(progress);
              }),
          );
        } catch (err) {
          stop.abort();
          throw err;
        } finally {
          hb.stop();
        }
      });
    },

    /** Compensation: each host deprovisioned and deleted (metal3 holds the object until then), then its Secret. */
    deleteBareMetalHosts: async (plan: SitePlan): Promise<void> => {
      await onBootstrap(
        {
          site: plan.site,
          ...(plan.spec.endpoints.bootstrapKubeconfigRef && {
            bootstrapKubeconfigRef: plan.spec.endpoints.bootstrapKubeconfigRef,
          }),
        },
        async (kube, ctx) => {
          const hb = heartbeats(ctx, heartbeatIntervalMs, { deleting: plan.spec.hosts.map((h) => h.name) });
          try {
            await Promise.all(plan.spec.hosts.map((host) => removeHost(kube, ctx, plan.site, host.name)));
          } finally {
            hb.stop();
          }
        },
      );
    },

    /** One host leaving an installed site: metal3 deprovisions it as its BareMetalHost goes. */
    removeBareMetalHost: async (input: SiteTarget & { host: string }): Promise<void> => {
      await onBootstrap(input, async (kube, ctx) => {
        const hb = heartbeats(ctx, heartbeatIntervalMs, { deleting: [input.host] });
        try {
          await removeHost(kube, ctx, input.site, input.host);
        } finally {
          hb.stop();
        }
      });
    },

    /** The workload cluster's objects, sized from the plan's hosts; applying again changes nothing. */
    applyClusterObjects: async (plan: SitePlan, image?: OsImage): Promise<void> => {
      const target = {
        site: plan.site,
        ...(plan.spec.endpoints.bootstrapKubeconfigRef && {
          bootstrapKubeconfigRef: plan.spec.endpoints.bootstrapKubeconfigRef,
        }),
      };
      await onBootstrap(target, async (kube) => {
        await ensureNamespace(kube, plan.site);
        for (const object of clusterObjects(plan, imageOf(plan, image))) await kube.apply(object);
      });
    },

    /** Until the Cluster is Provisioned with its control plane ready and every worker ready. */
    waitClusterProvisioned: async (input: SiteTarget): Promise<void> => {
      await onBootstrap(input, async (kube, ctx) => {
        const names = clusterNames(input.site);
        const resumed = ctx.info.heartbeatDetails as { step?: string } | undefined;
        const hb = heartbeats(ctx, heartbeatIntervalMs, { step: resumed?.step ?? 'cluster', phase: '' });
        try {
          if (hb.details.step === 'cluster') {
            const cluster = await waitObject(
              kube,
              ctx,
              ref('cluster', input.site, names.cluster),
              (o) => {
                const s = statusOf(o);
                return (s.phase === 'Provisioned' && s.controlPlaneReady === true) || s.phase === 'Failed';
              },
              'Provisioned with its control plane ready',
              (o) => {
                const phase = text(statusOf(o).phase, o === undefined ? 'absent' : '');
                if (phase !== hb.details.phase) hb.beat({ step: 'cluster', phase });
              },
            );
            const failure = clusterFailure(input.site, cluster);
            if (failure) throw failure;
            hb.beat({ step: 'workers', phase: '' });
          }
          await waitObject(
            kube,
            ctx,
            ref('machineDeployment', input.site, names.workers),
            workersReady,
            'every replica ready',
            (o) => {
              const s = statusOf(o);
              const phase = `${text(s.phase)} ${text(s.readyReplicas, '0')} ready`;
              if (phase !== hb.details.phase) hb.beat({ step: 'workers', phase });
            },
          );
          // A Cluster that fails after its control plane came up (a lost infrastructure) is still a failure.
          const failure = clusterFailure(input.site, await kube.find(ref('cluster', input.site, names.cluster)));
          if (failure) throw failure;
        } finally {
          hb.stop();
        }
      });
    },

    /**
     * Copies the `<cluster>-kubeconfig` Secret Cluster-API writes into the inventory as the kubeconfig secret
     * `<site>-kubeconfig`, and returns that secret's name: a kubeconfig never enters a workflow's history.
     */
    fetchClusterKubeconfig: async (input: SiteTarget): Promise<string> => {
      const revealed: string[] = [];
      return onBootstrap(
        input,
        async (kube) => {
          let data: Record<string, string>;
          try {
            data = await kube.readSecret(siteNamespace(input.site), clusterNames(input.site).kubeconfigSecret);
          } catch (err) {
            if (!isNotFound(err)) throw err;
            // Written by the control plane once kubeadm init is done: a later attempt finds it.
            throw ApplicationFailure.create({
              type: 'KubeconfigNotReady',
              message: `Secret ${siteNamespace(input.site)}/${clusterNames(input.site).kubeconfigSecret} does not exist yet`,
              nonRetryable: false,
            });
          }
          const kubeconfig = data.value;
          if (kubeconfig === undefined || kubeconfig === '') {
            throw nonRetryable(
              'Invalid',
              `Secret ${siteNamespace(input.site)}/${clusterNames(input.site).kubeconfigSecret} has no "value"`,
            );
          }
          revealed.push(kubeconfig);
          const name = kubeconfigSecretName(input.site);
          // The same as last time but after a certificate rotation: every patch of every site fetches it, and a
          // read costs the inventory less than a write (a new row version, its WAL flushed) at a fleet's start.
          const stored = await deps.secrets.reveal(name).catch(() => undefined);
          if (stored?.type !== 'kubeconfig' || stored.data.kubeconfig !== kubeconfig) {
            await deps.secrets.put({ name, labels: { [siteLabel]: input.site } }, 'kubeconfig', { kubeconfig });
          }
          return name;
        },
        revealed,
      );
    },

    /** Compensation: the cluster's objects, workers first, each deleted and gone. */
    deleteClusterObjects: async (plan: SitePlan): Promise<void> => {
      const target = {
        site: plan.site,
        ...(plan.spec.endpoints.bootstrapKubeconfigRef && {
          bootstrapKubeconfigRef: plan.spec.endpoints.bootstrapKubeconfigRef,
        }),
      };
      await onBootstrap(target, async (kube, ctx) => {
        const names = clusterNames(plan.site);
        const order: ObjectRef[] = [
          ref('machineDeployment', plan.site, names.workers),
          ref('controlPlane', plan.site, names.controlPlane),
          ref('cluster', plan.site, names.cluster),
          ref('metal3Cluster', plan.site, names.cluster),
          ref('configTemplate', plan.site, names.workers),
          ref('machineTemplate', plan.site, names.workers),
          ref('machineTemplate', plan.site, names.controlPlane),
        ];
        const hb = heartbeats(ctx, heartbeatIntervalMs, { deleting: '' });
        try {
          for (const object of order) {
            hb.beat({ deleting: `${object.kind} ${object.name}` });
            await kube.delete(object, { waitMs: 0 });
            await waitObject(
              kube,
              ctx,
              object,
              (o) => o === undefined,
              'deleted',
              () => undefined,
            );
          }
        } finally {
          hb.stop();
        }
      });
    },

    /** Sets the Kubernetes version of the control plane or of the workers; Cluster-API rolls the machines. */
    upgradeKubernetes: async (input: KubernetesVersionInput): Promise<void> => {
      const version = kubeVersion(input.version);
      await onBootstrap(input, async (kube) => {
        const names = clusterNames(input.site);
        if (input.part === 'control-plane') {
          await kube.update(ref('controlPlane', input.site, names.controlPlane), (kcp) => {
            const spec = kcp.spec as { version?: string };
            if (spec.version === version) return undefined;
            return { ...kcp, spec: { ...spec, version } };
          });
          return;
        }
        await kube.update(ref('machineDeployment', input.site, names.workers), (md) => {
          const spec = md.spec as { template?: { spec?: { version?: string } } };
          const template = spec.template?.spec;
          if (template === undefined)
            throw nonRetryable('Invalid', `MachineDeployment ${names.workers} has no template`);
          if (template.version === version) return undefined;
          template.version = version;
          return md;
        });
      });
    },

    /** Until every machine of that part runs the version (the rollout is over and all replicas are ready). */
    waitKubernetesVersion: async (input: KubernetesVersionInput): Promise<void> => {
      const version = kubeVersion(input.version);
      await onBootstrap(input, async (kube, ctx) => {
        const names = clusterNames(input.site);
        const hb = heartbeats(ctx, heartbeatIntervalMs, { part: input.part, seen: '' });
        const beat = (seen: string): void => {
          if (seen !== hb.details.seen) hb.beat({ part: input.part, seen });
        };
        try {
          if (input.part === 'control-plane') {
            await waitObject(
              kube,
              ctx,
              ref('controlPlane', input.site, names.controlPlane),
              (o) => {
                const s = statusOf(o);
                const replicas = (o?.spec as { replicas?: number } | undefined)?.replicas ?? 1;
                return (
                  (o?.spec as { version?: string } | undefined)?.version === version &&
                  s.version === version &&
                  s.updatedReplicas === replicas &&
                  s.readyReplicas === replicas
                );
              },
              `every control-plane machine at ${version}`,
              (o) => {
                const s = statusOf(o);
                beat(`${text(s.version)} ${text(s.updatedReplicas, '0')} updated`);
              },
            );
            return;
          }
          await waitObject(
            kube,
            ctx,
            ref('machineDeployment', input.site, names.workers),
            (o) =>
              (o?.spec as { template?: { spec?: { version?: string } } } | undefined)?.template?.spec?.version ===
                version && workersReady(o),
            `every worker at ${version}`,
            (o) => {
              const s = statusOf(o);
              beat(`${text(s.updatedReplicas, '0')} updated, ${text(s.readyReplicas, '0')} ready`);
            },
          );
        } finally {
          hb.stop();
        }
      });
    },
  };

  function clusterObjects(plan: SitePlan, image: OsImage): KubeObject[] {
    const site = plan.site;
    const names = clusterNames(site);
    const namespace = siteNamespace(site);
    const meta = (name: string) => ({ name, namespace, labels: labels(site) });
    const cluster = plan.spec.cluster;
    const version = kubeVersion(cluster.kubernetesVersion);
    const controlPlanes = plan.spec.hosts.filter((h) => h.role === 'control-plane').length;
    const workers = plan.spec.hosts.filter((h) => h.role === 'worker').length;
    const nodeRegistration = {
      name: '{{ ds.meta_data.name }}',
      kubeletExtraArgs: { 'node-labels': `${siteLabel}=${site}` },
    };
    const machineTemplate = (name: string, role: string): KubeObject => ({
      ...api.machineTemplate,
      metadata: meta(name),
      spec: {
        template: {
          spec: {
            image: { url: image.url, checksum: image.sha256, checksumType: 'sha256', format: 'qcow2' },
            hostSelector: { matchLabels: { [siteLabel]: site, [roleLabel]: role } },
            automatedCleaningMode: 'metadata',
          },
        },
      },
    });
    return [
      {
        ...api.cluster,
        metadata: meta(names.cluster),
        spec: {
          clusterNetwork: {
            pods: { cidrBlocks: [cluster.podCidr] },
            services: { cidrBlocks: [cluster.serviceCidr] },
          },
          controlPlaneRef: { ...api.controlPlane, name: names.controlPlane },
          infrastructureRef: { ...api.metal3Cluster, name: names.cluster },
        },
      },
      {
        ...api.metal3Cluster,
        metadata: meta(names.cluster),
        spec: {
          controlPlaneEndpoint: { host: cluster.controlPlaneEndpoint.host, port: cluster.controlPlaneEndpoint.port },
          cloudProviderEnabled: false,
        },
      },
      machineTemplate(names.controlPlane, 'control-plane'),
      machineTemplate(names.workers, 'worker'),
      {
        ...api.controlPlane,
        metadata: meta(names.controlPlane),
        spec: {
          replicas: controlPlanes,
          version,
          machineTemplate: { infrastructureRef: { ...api.machineTemplate, name: names.controlPlane } },
          kubeadmConfigSpec: {
            clusterConfiguration: {
              networking: { podSubnet: cluster.podCidr, serviceSubnet: cluster.serviceCidr },
            },
            initConfiguration: { nodeRegistration },
            joinConfiguration: { nodeRegistration },
          },
        },
      },
      {
        ...api.configTemplate,
        metadata: meta(names.workers),
        spec: { template: { spec: { joinConfiguration: { nodeRegistration } } } },
      },
      {
        ...api.machineDeployment,
        metadata: meta(names.workers),
        spec: {
          clusterName: names.cluster,
          replicas: workers,
          selector: { matchLabels: { [clusterNameLabel]: names.cluster } },
          template: {
            metadata: { labels: { [clusterNameLabel]: names.cluster } },
            spec: {
              clusterName: names.cluster,
              version,
              bootstrap: { configRef: { ...api.configTemplate, name: names.workers } },
              infrastructureRef: { ...api.machineTemplate, name: names.workers },
            },
          },
        },
      },
    ];
  }
}

export type ClusterActivities = ReturnType<typeof createClusterActivities>;
