/**
 * Test-only stand-in for the Cluster-API controllers (core, kubeadm control plane, kubeadm bootstrap) and metal3's
 * (baremetal-operator, cluster-api-provider-metal3), none of which can run in the lab. It resyncs the lab API server
 * the way a controller's informer does (a full list per kind, every interval) and moves each object's status as
 * those controllers would:
 * - BareMetalHost: see baremetal-host.ts (through real Ironic nodes when given an Ironic URL).
 * - Metal3Cluster: ready.
 * - KubeadmControlPlane: after a delay, initialized, and the `<cluster>-kubeconfig` Secret written (data.value: a
 *   kubeconfig for the lab API server itself, which is the application cluster in the lab); then its machines as
 *   below, ready (and `ready`) as far as there are hosts for them. A new spec.version rolls: updatedReplicas drops to
 *   0, and status.version and the Nodes' kubelet version follow after a delay.
 * - MachineDeployment: once its cluster's control plane is initialized, its machines as below; phase Running when
 *   every replica is ready, ScalingUp before. A spec change rolls like the control plane's.
 * - Machines (cluster-api-provider-metal3's part): each of the `replicas` machines of a control plane or machine
 *   deployment takes a provisioned BareMetalHost of its namespace that matches its Metal3MachineTemplate's
 *   hostSelector.matchLabels (hosts it already holds first), binds it (spec.consumerRef: Metal3Machine
 *   `<owner>-<host>`) and gets a Node (kwok makes it Ready) named `<namespace without "site-">-<host>` with providerID
 *   `metal3://<namespace>/<host>/<owner>-<host>`. Fewer hosts than replicas: fewer Nodes. A host that is deleted,
 *   deprovisioned or no longer needed (scale down, owner deleted) is released and its Node deleted.
 * - Cluster: Provisioning, then Provisioned with infrastructureReady and controlPlaneReady once both are.
 * Failures on demand: the `standin.icn.test/fail` annotation (value: the state that fails) on a BareMetalHost or a
 * Cluster, or the `failOn` option, set the error fields those controllers set.
 */
import { fakeNode } from '../../deploy/dev/lab/kubernetes.ts';
import { readFileSync } from 'node:fs';
import { IronicClient } from '../../src/clients/ironic/index.ts';
import { isNotFound, type KubeObject, KubernetesClient, type ObjectRef } from '../../src/clients/kubernetes/index.ts';
import { type HostContext, type HostFailState, reconcileHost, reportHostError } from './baremetal-host.ts';
import {
  condition,
  failAnnotation,
  failMessageAnnotation,
  managedBy,
  managedLabel,
  now,
  Sightings,
  sleep,
  specOf,
  statusOf,
  unchanged,
} from './support.ts';

export { failAnnotation, failMessageAnnotation } from './support.ts';
export type { HostFailState } from './baremetal-host.ts';

export interface ClusterApiStandInOptions {
  /** Path of the lab API server's kubeconfig: watched, and handed out as every workload cluster's kubeconfig. */
  kubeconfig: string;
  /** Drive BareMetalHosts through real fake-hardware Ironic nodes; timers otherwise. */
  ironic?: { url: string };
  /** Only these namespaces (default: all). Two stand-ins in one API server must not share a namespace. */
  namespaces?: string[];
  failOn?: {
    /** BareMetalHost name → the state it fails in. */
    hosts?: Record<string, HostFailState>;
    /** Cluster name → the failureMessage it fails with while provisioning. */
    clusters?: Record<string, string>;
  };
  /** How long each step takes, in ms. */
  delays?: Partial<Delays>;
  /** Resync period in ms (default 300). */
  intervalMs?: number;
}

interface Delays {
  /** Each BareMetalHost state (on top of Ironic's own time). */
  hostStep: number;
  infrastructure: number;
  controlPlane: number;
  workers: number;
  /** A version rollout, control plane or workers. */
  rollout: number;
}

const defaultDelays: Delays = { hostStep: 300, infrastructure: 300, controlPlane: 1000, workers: 1000, rollout: 1500 };

export interface ClusterApiStandIn {
  /** Stops resyncing and waits for the Ironic steps under way. */
  stop(): Promise<void>;
  /** What went wrong in the stand-in itself (or in the background Ironic steps), for a failing test to print. */
  readonly problems: string[];
}

const kinds = {
  host: { apiVersion: 'metal3.io/v1alpha1', kind: 'BareMetalHost' },
  cluster: { apiVersion: 'cluster.x-k8s.io/v1beta1', kind: 'Cluster' },
  metal3Cluster: { apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta1', kind: 'Metal3Cluster' },
  controlPlane: { apiVersion: 'controlplane.cluster.x-k8s.io/v1beta1', kind: 'KubeadmControlPlane' },
  machineDeployment: { apiVersion: 'cluster.x-k8s.io/v1beta1', kind: 'MachineDeployment' },
  machineTemplate: { apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta1', kind: 'Metal3MachineTemplate' },
} as const;

const metal3Machine = { apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta1', kind: 'Metal3Machine' } as const;

const clusterNameLabel = 'cluster.x-k8s.io/cluster-name';
const ownerLabel = 'standin.icn.test/owner';
const ownerNamespaceLabel = 'standin.icn.test/owner-namespace';

type Kind = keyof typeof kinds;
type Snapshot = Record<Kind, KubeObject[]>;

function ref(kind: Kind, object: KubeObject): ObjectRef {
  return {
    ...kinds[kind],
    name: object.metadata.name,
    ...(object.metadata.namespace === undefined ? {} : { namespace: object.metadata.namespace }),
  };
}

const sameNamespace = (a: KubeObject, b: KubeObject): boolean => a.metadata.namespace === b.metadata.namespace;

export function startClusterApiStandIn(opts: ClusterApiStandInOptions): ClusterApiStandIn {
  const kube = new KubernetesClient(opts.kubeconfig);
  const ironic = opts.ironic ? new IronicClient({ url: opts.ironic.url }) : undefined;
  const delays = { ...defaultDelays, ...opts.delays };
  const sightings = new Sightings();
  const problems: string[] = [];
  const inFlight = new Map<string, Promise<void>>();
  const report = (message: string): void => {
    if (problems.length < 200) problems.push(`${now()} ${message}`);
  };
  const hostCtx: HostContext = {
    kube,
    ironic,
    sightings,
    stepMs: delays.hostStep,
    failOn: opts.failOn?.hosts ?? {},
    report,
  };
  const kubeconfigText = readFileSync(opts.kubeconfig, 'utf8');
  const run = { stopped: false };

  async function list(kind: Kind): Promise<KubeObject[]> {
    const { apiVersion, kind: k } = kinds[kind];
    if (opts.namespaces === undefined) return kube.list(apiVersion, k);
    const lists = await Promise.all(opts.namespaces.map((namespace) => kube.list(apiVersion, k, { namespace })));
    return lists.flat();
  }

  async function snapshot(): Promise<Snapshot> {
    const [host, cluster, metal3Cluster, controlPlane, machineDeployment, machineTemplate] = await Promise.all([
      list('host'),
      list('cluster'),
      list('metal3Cluster'),
      list('controlPlane'),
      list('machineDeployment'),
      list('machineTemplate'),
    ]);
    return { host, cluster, metal3Cluster, controlPlane, machineDeployment, machineTemplate };
  }

  async function patchIfChanged(kind: Kind, object: KubeObject, patch: Record<string, unknown>): Promise<void> {
    if (unchanged(statusOf(object), patch)) return;
    await kube.patchStatus(ref(kind, object), patch);
  }

  /** Hosts run in the background (an Ironic step takes seconds); one step per host at a time. */
  function reconcileHosts(hosts: KubeObject[]): void {
    for (const host of hosts) {
      const key = host.metadata.uid ?? host.metadata.name;
      if (inFlight.has(key)) continue;
      const step = reconcileHost(hostCtx, host)
        .catch((err: unknown) => reportHostError(hostCtx, host, err))
        .catch((err: unknown) => {
          report(`BareMetalHost ${host.metadata.name}: ${err instanceof Error ? err.message : String(err)}`);
        })
        .finally(() => inFlight.delete(key));
      inFlight.set(key, step);
    }
  }

  function clusterNameOf(object: KubeObject, snap: Snapshot): string | undefined {
    const label = object.metadata.labels?.[clusterNameLabel];
    if (label !== undefined) return label;
    const spec = specOf(object);
    if (typeof spec.clusterName === 'string') return spec.clusterName;
    return snap.cluster.find(
      (c) =>
        sameNamespace(c, object) &&
        (specOf(c).controlPlaneRef as { name?: string } | undefined)?.name === object.metadata.name,
    )?.metadata.name;
  }

  function clusterFailure(cluster: KubeObject): string | undefined {
    const fromOption = opts.failOn?.clusters?.[cluster.metadata.name];
    if (fromOption !== undefined) return fromOption;
    const asked = cluster.metadata.annotations?.[failAnnotation];
    if (asked === undefined) return undefined;
    return (
      cluster.metadata.annotations?.[failMessageAnnotation] ??
      `Cluster ${cluster.metadata.namespace ?? ''}/${cluster.metadata.name} failed while ${asked} (asked for by the test)`
    );
  }

  async function reconcileMetal3Cluster(object: KubeObject): Promise<void> {
    if (sightings.elapsed(`${object.metadata.uid ?? ''}/ready`) < delays.infrastructure) return;
    await patchIfChanged('metal3Cluster', object, {
      ready: true,
      conditions: [condition(object, 'Ready', 'True'), condition(object, 'BaremetalInfrastructureReady', 'True')],
    });
  }

  /**
   * A rollout of a version (or any spec change): the replicas are replaced after the rollout delay. Returns the
   * status fields that say how far it got.
   */
  function rollout(object: KubeObject, target: string, replicas: number): { updatedReplicas: number; done: boolean } {
    const done = sightings.elapsed(`${object.metadata.uid ?? ''}/rollout/${target}`) >= delays.rollout;
    return { updatedReplicas: done ? replicas : 0, done };
  }

  async function reconcileControlPlane(kcp: KubeObject, snap: Snapshot): Promise<void> {
    const spec = specOf(kcp);
    const status = statusOf(kcp);
    const replicas = typeof spec.replicas === 'number' ? spec.replicas : 1;
    const version = typeof spec.version === 'string' ? spec.version : '';
    const clusterName = clusterNameOf(kcp, snap);
    const selector = `${clusterNameLabel}=${clusterName ?? ''},cluster.x-k8s.io/control-plane`;
    const initialized = status.initialized === true;
    if (!initialized) {
      if (sightings.elapsed(`${kcp.metadata.uid ?? ''}/init`) < delays.controlPlane) {
        await patchIfChanged('controlPlane', kcp, {
          replicas,
          readyReplicas: 0,
          updatedReplicas: 0,
          unavailableReplicas: replicas,
          initialized: false,
          ready: false,
          selector,
          observedGeneration: kcp.metadata.generation,
          conditions: [
            condition(kcp, 'Ready', 'False', 'ScalingUp'),
            condition(kcp, 'Available', 'False', 'WaitingForKubeadmInit'),
          ],
        });
        return;
      }
      if (clusterName !== undefined) await writeKubeconfig(kcp, clusterName);
    }
    const rolling = initialized && typeof status.version === 'string' && status.version !== version;
    const roll = rolling ? rollout(kcp, version, replicas) : { updatedReplicas: replicas, done: true };
    const ready =
      clusterName === undefined
        ? 0
        : await ensureMachines(kcp, 'control-plane', clusterName, replicas, version, snap, roll.done);
    await patchIfChanged('controlPlane', kcp, {
      replicas,
      readyReplicas: ready,
      updatedReplicas: roll.updatedReplicas,
      unavailableReplicas: replicas - ready,
      initialized: true,
      ready: ready > 0,
      version: roll.done ? version : status.version,
      selector,
      observedGeneration: kcp.metadata.generation,
      conditions: [
        ready >= replicas
          ? condition(kcp, 'Ready', 'True')
          : condition(kcp, 'Ready', 'False', 'ScalingUp', `${ready} of ${replicas} machines have a BareMetalHost`),
        condition(kcp, 'Available', 'True'),
        roll.done
          ? condition(kcp, 'MachinesSpecUpToDate', 'True')
          : condition(
              kcp,
              'MachinesSpecUpToDate',
              'False',
              'RollingUpdateInProgress',
              `Rolling ${replicas} replicas to ${version}`,
            ),
      ],
    });
  }

  async function reconcileMachineDeployment(md: KubeObject, snap: Snapshot): Promise<void> {
    const spec = specOf(md);
    const status = statusOf(md);
    const replicas = typeof spec.replicas === 'number' ? spec.replicas : 1;
    const template = (spec.template as { spec?: { version?: string } } | undefined)?.spec;
    const version = template?.version ?? '';
    const clusterName = clusterNameOf(md, snap);
    const kcp = snap.controlPlane.find(
      (c) => sameNamespace(c, md) && clusterNameOf(c, snap) === clusterName && statusOf(c).initialized === true,
    );
    const selector = `${clusterNameLabel}=${clusterName ?? ''},cluster.x-k8s.io/deployment-name=${md.metadata.name}`;
    const base = { replicas, selector, observedGeneration: md.metadata.generation };
    // Workers join only once the control plane answers, as kubeadm join needs it.
    if (kcp === undefined || sightings.elapsed(`${md.metadata.uid ?? ''}/join`) < delays.workers) {
      if (kcp === undefined) sightings.forget(`${md.metadata.uid ?? ''}/join`);
      await patchIfChanged('machineDeployment', md, {
        ...base,
        readyReplicas: 0,
        availableReplicas: 0,
        updatedReplicas: 0,
        unavailableReplicas: replicas,
        phase: 'ScalingUp',
      });
      return;
    }
    // A spec change after the first rollout (a new version) is another rollout.
    const known = status.phase === 'Running';
    const generation = md.metadata.generation ?? 0;
    const changed = known && typeof status.observedGeneration === 'number' && status.observedGeneration < generation;
    const rollingNow = changed || (known && status.updatedReplicas !== replicas);
    const roll = rollingNow ? rollout(md, `${generation}`, replicas) : { updatedReplicas: replicas, done: true };
    const ready =
      clusterName === undefined
        ? 0
        : await ensureMachines(md, 'worker', clusterName, replicas, version, snap, roll.done);
    const complete = ready >= replicas;
    const waiting = `${ready} of ${replicas} machines have a BareMetalHost`;
    await patchIfChanged('machineDeployment', md, {
      ...base,
      readyReplicas: ready,
      availableReplicas: ready,
      updatedReplicas: roll.updatedReplicas,
      unavailableReplicas: replicas - ready,
      phase: complete ? 'Running' : 'ScalingUp',
      conditions: complete
        ? [condition(md, 'Ready', 'True'), condition(md, 'Available', 'True')]
        : [
            condition(md, 'Ready', 'False', 'WaitingForHosts', waiting),
            condition(md, 'Available', 'False', 'WaitingForHosts', waiting),
          ],
    });
  }

  async function reconcileCluster(cluster: KubeObject, snap: Snapshot): Promise<void> {
    const status = statusOf(cluster);
    if (status.phase === 'Failed') return;
    const spec = specOf(cluster);
    const infraRef = spec.infrastructureRef as { name?: string } | undefined;
    const cpRef = spec.controlPlaneRef as { name?: string } | undefined;
    const infra = snap.metal3Cluster.find((m) => sameNamespace(m, cluster) && m.metadata.name === infraRef?.name);
    const kcp = snap.controlPlane.find((c) => sameNamespace(c, cluster) && c.metadata.name === cpRef?.name);
    const failure = clusterFailure(cluster);
    if (failure !== undefined && sightings.elapsed(`${cluster.metadata.uid ?? ''}/fail`) >= delays.infrastructure) {
      await patchIfChanged('cluster', cluster, {
        phase: 'Failed',
        failureReason: 'CreateError',
        failureMessage: failure,
        conditions: [condition(cluster, 'Ready', 'False', 'CreateError', failure)],
      });
      return;
    }
    const infrastructureReady = infra !== undefined && statusOf(infra).ready === true;
    const initialized = kcp !== undefined && statusOf(kcp).initialized === true;
    const controlPlaneReady = kcp !== undefined && statusOf(kcp).ready === true;
    const provisioned = failure === undefined && infrastructureReady && initialized;
    await patchIfChanged('cluster', cluster, {
      phase: provisioned ? 'Provisioned' : infraRef === undefined ? 'Pending' : 'Provisioning',
      infrastructureReady,
      controlPlaneReady: provisioned && controlPlaneReady,
      observedGeneration: cluster.metadata.generation,
      conditions: [
        condition(cluster, 'Ready', provisioned && controlPlaneReady ? 'True' : 'False'),
        condition(cluster, 'InfrastructureReady', infrastructureReady ? 'True' : 'False'),
        condition(cluster, 'ControlPlaneInitialized', initialized ? 'True' : 'False'),
        condition(cluster, 'ControlPlaneReady', controlPlaneReady ? 'True' : 'False'),
      ],
    });
  }

  /** KCP writes this Secret once kubeadm init is done; the lab's application cluster is the lab API server. */
  async function writeKubeconfig(kcp: KubeObject, clusterName: string): Promise<void> {
    await kube.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'cluster.x-k8s.io/secret',
      metadata: {
        name: `${clusterName}-kubeconfig`,
        namespace: kcp.metadata.namespace,
        labels: { [clusterNameLabel]: clusterName, [managedLabel]: managedBy },
      },
      data: { value: Buffer.from(kubeconfigText).toString('base64') },
    });
  }

  /**
   * cluster-api-provider-metal3's part for one control plane or machine deployment: up to `replicas` hosts bound and
   * a Node per bound host; hosts no longer wanted are released and their Nodes deleted. Returns how many machines have
   * a host (and so a Node). Once `rolled`, the Nodes report `version` as their kubelet's.
   */
  async function ensureMachines(
    owner: KubeObject,
    role: 'control-plane' | 'worker',
    clusterName: string,
    replicas: number,
    version: string,
    snap: Snapshot,
    rolled: boolean,
  ): Promise<number> {
    const hosts = snap.host.filter((h) => sameNamespace(h, owner));
    const selector = hostSelectorOf(owner, snap);
    // Without its template no Metal3Machine can be made, so no host is taken.
    const candidates =
      selector === undefined
        ? []
        : hosts
            .filter((h) => usable(h) && matches(h, selector) && (consumerOf(h) === undefined || boundTo(h, owner)))
            .sort(
              (a, b) =>
                Number(boundTo(b, owner)) - Number(boundTo(a, owner)) || a.metadata.name.localeCompare(b.metadata.name),
            );
    const chosen = new Set(candidates.slice(0, replicas));
    for (const host of hosts) if (boundTo(host, owner) && !chosen.has(host)) await release(host);
    const bound: KubeObject[] = [];
    for (const host of chosen) if (boundTo(host, owner) || (await bind(host, owner))) bound.push(host);

    const existing = await kube.list('v1', 'Node', {
      labelSelector: `${ownerLabel}=${owner.metadata.name},${ownerNamespaceLabel}=${owner.metadata.namespace ?? ''}`,
    });
    const wanted = new Map(bound.map((h) => [nodeName(h), h]));
    for (const node of existing) {
      if (!wanted.has(node.metadata.name))
        await kube.delete({ apiVersion: 'v1', kind: 'Node', name: node.metadata.name }, { waitMs: 0 });
    }
    for (const [name, host] of wanted) {
      const node = existing.find((n) => n.metadata.name === name);
      if (node === undefined) {
        // A new machine starts from the current spec, mid-rollout too.
        await kube.apply(clusterNode(name, role, owner, host, clusterName, version));
      } else if (rolled && kubeletVersionOf(node) !== version) {
        await kube.patchStatus({ apiVersion: 'v1', kind: 'Node', name }, { nodeInfo: { kubeletVersion: version } });
      }
    }
    return bound.length;
  }

  /** The Metal3MachineTemplate's matchLabels (matchExpressions are not needed by the tests); undefined: no template. */
  function hostSelectorOf(owner: KubeObject, snap: Snapshot): Record<string, string> | undefined {
    const spec = specOf(owner) as {
      machineTemplate?: { infrastructureRef?: { name?: string } };
      template?: { spec?: { infrastructureRef?: { name?: string } } };
    };
    const name =
      owner.kind === kinds.controlPlane.kind
        ? spec.machineTemplate?.infrastructureRef?.name
        : spec.template?.spec?.infrastructureRef?.name;
    const template = snap.machineTemplate.find((t) => sameNamespace(t, owner) && t.metadata.name === name);
    if (template === undefined) return undefined;
    const templateSpec = specOf(template) as {
      template?: { spec?: { hostSelector?: { matchLabels?: Record<string, string> } } };
    };
    return templateSpec.template?.spec?.hostSelector?.matchLabels ?? {};
  }

  /** Takes the host unless another machine got it first (the check and the write are one optimistic update). */
  async function bind(host: KubeObject, owner: KubeObject): Promise<boolean> {
    try {
      const after = await kube.update(ref('host', host), (h) => {
        if (consumerOf(h) !== undefined || h.metadata.deletionTimestamp !== undefined) return undefined;
        const consumerRef = { ...metal3Machine, name: machineName(owner, h), namespace: h.metadata.namespace };
        return { ...h, spec: { ...specOf(h), consumerRef } };
      });
      return boundTo(after, owner);
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /**
   * Clears the host's consumerRef. The real provider also takes the image off, which deprovisions the host; here the
   * host keeps the image its owner (the site's activities) gave it.
   */
  async function release(host: KubeObject): Promise<void> {
    const consumer = consumerOf(host);
    try {
      await kube.update(ref('host', host), (h) => {
        const current = consumerOf(h);
        if (current?.name !== consumer?.name || current?.kind !== consumer?.kind) return undefined;
        const { consumerRef: _released, ...spec } = specOf(h);
        return { ...h, spec };
      });
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }

  /**
   * Nodes whose owner is gone go too, and the hosts it held are released (what the machine controllers do when their
   * Machines are deleted).
   */
  async function collectNodes(snap: Snapshot): Promise<void> {
    const nodes = await kube.list('v1', 'Node', { labelSelector: `${managedLabel}=${managedBy}` });
    for (const node of nodes) {
      const labels = node.metadata.labels ?? {};
      const namespace = labels[ownerNamespaceLabel];
      if (opts.namespaces !== undefined && (namespace === undefined || !opts.namespaces.includes(namespace))) continue;
      const owned = [...snap.controlPlane, ...snap.machineDeployment].some(
        (o) => o.metadata.name === labels[ownerLabel] && o.metadata.namespace === namespace,
      );
      if (!owned) await kube.delete({ apiVersion: 'v1', kind: 'Node', name: node.metadata.name }, { waitMs: 0 });
    }
    for (const host of snap.host) {
      const owner = ownerNameOf(host);
      if (owner === undefined) continue;
      const alive = [...snap.controlPlane, ...snap.machineDeployment].some(
        (o) => sameNamespace(o, host) && o.metadata.name === owner,
      );
      if (!alive) await release(host);
    }
    const namespaces = opts.namespaces ?? [undefined];
    for (const namespace of namespaces) {
      const secrets = await kube.list('v1', 'Secret', {
        labelSelector: `${managedLabel}=${managedBy}`,
        ...(namespace === undefined ? {} : { namespace }),
      });
      for (const secret of secrets) {
        const clusterName = secret.metadata.labels?.[clusterNameLabel];
        const alive = snap.controlPlane.some((c) => sameNamespace(c, secret) && clusterNameOf(c, snap) === clusterName);
        if (!alive)
          await kube.delete(
            {
              apiVersion: 'v1',
              kind: 'Secret',
              name: secret.metadata.name,
              ...(secret.metadata.namespace === undefined ? {} : { namespace: secret.metadata.namespace }),
            },
            { waitMs: 0 },
          );
      }
    }
  }

  async function tick(): Promise<void> {
    const snap = await snapshot();
    reconcileHosts(snap.host);
    const steps = [
      ...snap.metal3Cluster.map((o) => reconcileMetal3Cluster(o)),
      ...snap.controlPlane.map((o) => reconcileControlPlane(o, snap)),
      ...snap.machineDeployment.map((o) => reconcileMachineDeployment(o, snap)),
      ...snap.cluster.map((o) => reconcileCluster(o, snap)),
      collectNodes(snap),
    ];
    const results = await Promise.allSettled(steps);
    for (const r of results) {
      if (r.status === 'rejected') report(r.reason instanceof Error ? r.reason.message : String(r.reason));
    }
  }

  const loop = (async () => {
    while (!run.stopped) {
      try {
        await tick();
      } catch (err) {
        report(`resync: ${err instanceof Error ? err.message : String(err)}`);
      }
      await sleep(opts.intervalMs ?? 300);
    }
  })();

  return {
    problems,
    async stop() {
      run.stopped = true;
      await loop;
      await Promise.allSettled([...inFlight.values()]);
      kube.close();
    },
  };
}

function clusterNode(
  name: string,
  role: 'control-plane' | 'worker',
  owner: KubeObject,
  host: KubeObject,
  clusterName: string,
  version: string,
): KubeObject {
  const node = fakeNode(name, {
    kubeletVersion: version,
    labels: {
      [clusterNameLabel]: clusterName,
      [ownerLabel]: owner.metadata.name,
      [ownerNamespaceLabel]: owner.metadata.namespace ?? '',
      [managedLabel]: managedBy,
      ...(role === 'control-plane' ? { 'node-role.kubernetes.io/control-plane': '' } : {}),
    },
  });
  const providerID = `metal3://${host.metadata.namespace ?? ''}/${host.metadata.name}/${machineName(owner, host)}`;
  return { ...node, spec: { providerID } };
}

/** Node names are cluster-wide: the site's namespace keeps two sites' `host-1` apart. */
function nodeName(host: KubeObject): string {
  const site = (host.metadata.namespace ?? 'default').replace(/^site-/, '');
  return `${site}-${host.metadata.name}`.toLowerCase();
}

/** The Metal3Machine that holds a host: one per (owner, host), as the provider names them here. */
const machineName = (owner: KubeObject, host: KubeObject): string => `${owner.metadata.name}-${host.metadata.name}`;

interface ConsumerRef {
  apiVersion?: string;
  kind?: string;
  name?: string;
  namespace?: string;
}

function consumerOf(host: KubeObject): ConsumerRef | undefined {
  const consumer = specOf(host).consumerRef;
  return typeof consumer === 'object' && consumer !== null ? consumer : undefined;
}

function boundTo(host: KubeObject, owner: KubeObject): boolean {
  const consumer = consumerOf(host);
  return consumer?.kind === metal3Machine.kind && consumer.name === machineName(owner, host);
}

/** The control plane or machine deployment whose machine holds the host, read back from the machine's name. */
function ownerNameOf(host: KubeObject): string | undefined {
  const consumer = consumerOf(host);
  const suffix = `-${host.metadata.name}`;
  if (consumer?.kind !== metal3Machine.kind || consumer.name?.endsWith(suffix) !== true) return undefined;
  return consumer.name.slice(0, -suffix.length);
}

/** Provisioned and staying: a host being deleted or deprovisioned no longer carries a machine. */
function usable(host: KubeObject): boolean {
  const provisioning = statusOf(host).provisioning as { state?: string } | undefined;
  return provisioning?.state === 'provisioned' && host.metadata.deletionTimestamp === undefined;
}

function matches(host: KubeObject, labels: Record<string, string>): boolean {
  return Object.entries(labels).every(([key, value]) => host.metadata.labels?.[key] === value);
}

function kubeletVersionOf(node: KubeObject): string | undefined {
  return (statusOf(node).nodeInfo as { kubeletVersion?: string } | undefined)?.kubeletVersion;
}
