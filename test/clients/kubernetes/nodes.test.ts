// Needs: the kubernetes lab peer (kube-apiserver + kwok).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { labUp } from '../../../deploy/dev/lab/index.ts';
import { fakeNode, type KubernetesLabInfo } from '../../../deploy/dev/lab/kubernetes.ts';
import { PeerError } from '../../../src/clients/errors.ts';
import {
  cordonNode,
  deleteNode,
  type DrainProgress,
  drainNode,
  findCondition,
  findHostNode,
  type KubeObject,
  KubernetesClient,
  type NodeObject,
  type ObjectRef,
  uncordonNode,
  waitNodeReady,
} from '../../../src/clients/kubernetes/index.ts';
import { labPeer } from '../../support/lab.ts';

/** Node names are cluster-wide and namespaces are never deleted in the lab: both carry this run's id. */
const run = Date.now().toString(36);
const namespace = `nodes-test-${run}`;
const created: string[] = [];

let kube: KubernetesClient;

beforeAll(async () => {
  await labUp(['kubernetes']);
  const lab = labPeer('kubernetes') as KubernetesLabInfo;
  kube = new KubernetesClient(lab.kubeconfig);
  await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
}, 900_000);

afterAll(async () => {
  // Pods first: kwok finalizes a deleted pod only while its node exists.
  for (const pod of await kube.list('v1', 'Pod', { namespace })) {
    await kube.delete({ apiVersion: 'v1', kind: 'Pod', namespace, name: pod.metadata.name }, { waitMs: 10_000 });
  }
  for (const name of created) await deleteNode(kube, name);
  kube.close();
});

const nodeRef = (name: string): ObjectRef => ({ apiVersion: 'v1', kind: 'Node', name });
const podRef = (name: string): ObjectRef => ({ apiVersion: 'v1', kind: 'Pod', namespace, name });

async function node(name: string, extra: { providerID?: string; labels?: Record<string, string> } = {}) {
  created.push(name);
  const base = fakeNode(name, extra.labels === undefined ? {} : { labels: extra.labels });
  return kube.apply({ ...base, ...(extra.providerID !== undefined && { spec: { providerID: extra.providerID } }) });
}

async function runningPod(
  name: string,
  nodeName: string,
  extra: { labels?: Record<string, string>; annotations?: Record<string, string>; owner?: KubeObject } = {},
): Promise<KubeObject> {
  await kube.apply({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace,
      ...(extra.labels && { labels: extra.labels }),
      ...(extra.annotations && { annotations: extra.annotations }),
      ...(extra.owner && {
        ownerReferences: [
          {
            apiVersion: extra.owner.apiVersion,
            kind: extra.owner.kind,
            name: extra.owner.metadata.name,
            uid: extra.owner.metadata.uid ?? '',
            controller: true,
          },
        ],
      }),
    },
    // No scheduler runs in the lab: the pod names its node, and kwok runs it there.
    spec: { nodeName, containers: [{ name: 'app', image: 'registry.invalid/app:1' }] },
  });
  const running = await kube.waitFor(
    podRef(name),
    (o) => (o?.status as { phase?: string } | undefined)?.phase === 'Running',
    {
      timeoutMs: 30_000,
    },
  );
  return running as KubeObject;
}

const podsOn = async (nodeName: string): Promise<string[]> =>
  (await kube.list('v1', 'Pod', { fieldSelector: `spec.nodeName=${nodeName}` })).map((p) => p.metadata.name).sort();

async function peerError(promise: Promise<unknown>): Promise<PeerError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(PeerError);
    return err as PeerError;
  }
  throw new Error('expected a PeerError, but the call succeeded');
}

describe('node operations against the lab API server', () => {
  it('cordons and uncordons, idempotently', async () => {
    const name = `nodes-${run}-cordon`;
    await node(name);
    const cordoned = await cordonNode(kube, name);
    expect(cordoned.spec?.unschedulable).toBe(true);
    expect((await kube.get<NodeObject>(nodeRef(name))).spec?.unschedulable).toBe(true);
    // kwok heartbeats the node's status meanwhile: a repeat is judged by its effect, not by the resourceVersion.
    expect((await cordonNode(kube, name)).spec?.unschedulable).toBe(true);

    const uncordoned = await uncordonNode(kube, name);
    expect(uncordoned.spec?.unschedulable).toBeUndefined();
    expect((await kube.get<NodeObject>(nodeRef(name))).spec?.unschedulable).toBeUndefined();
    expect((await uncordonNode(kube, name)).spec?.unschedulable).toBeUndefined();

    const missing = await peerError(cordonNode(kube, `nodes-${run}-absent`));
    expect(missing.reason).toBe('NotFound');
    expect(missing.retryable).toBe(false);
  });

  it('drains: evicts the pods, leaves DaemonSet and mirror pods, waits until the evicted ones are gone', async () => {
    const name = `nodes-${run}-drain`;
    const other = `nodes-${run}-drain-other`;
    await node(name);
    await node(other);
    // A DaemonSet object without a controller: its pods are made by hand, owned by it as the controller would.
    const daemonSet = await kube.apply({
      apiVersion: 'apps/v1',
      kind: 'DaemonSet',
      metadata: { name: 'agent', namespace },
      spec: {
        selector: { matchLabels: { app: 'agent' } },
        template: {
          metadata: { labels: { app: 'agent' } },
          spec: { containers: [{ name: 'agent', image: 'registry.invalid/agent:1' }] },
        },
      },
    });
    await runningPod('web-0', name);
    await runningPod('web-1', name);
    await runningPod('agent-drain', name, { labels: { app: 'agent' }, owner: daemonSet });
    await runningPod('static-drain', name, { annotations: { 'kubernetes.io/config.mirror': 'hash-1' } });
    await runningPod('web-elsewhere', other);

    const progress: DrainProgress[] = [];
    const started = Date.now();
    await drainNode(kube, name, { timeoutMs: 30_000, intervalMs: 200, onProgress: (p) => progress.push(p) });
    console.log(`drain of 2 pods: ${Date.now() - started} ms`);

    expect((await kube.get<NodeObject>(nodeRef(name))).spec?.unschedulable).toBe(true);
    expect(await podsOn(name)).toEqual(['agent-drain', 'static-drain']);
    expect(await kube.find(podRef('web-0'))).toBeUndefined();
    expect(await kube.find(podRef('web-1'))).toBeUndefined();
    const agent = await kube.get(podRef('agent-drain'));
    expect(agent.metadata.deletionTimestamp).toBeUndefined();
    expect((agent.status as { phase?: string }).phase).toBe('Running');
    expect(await podsOn(other)).toEqual(['web-elsewhere']);
    expect((await kube.get<NodeObject>(nodeRef(other))).spec?.unschedulable).toBeUndefined();
    expect(progress[0]?.remaining.sort()).toEqual([`${namespace}/web-0`, `${namespace}/web-1`]);
    expect(progress.at(-1)).toEqual({ remaining: [], blocked: [] });

    // Again: nothing left to evict, one pass.
    const repeat: DrainProgress[] = [];
    await drainNode(kube, name, { timeoutMs: 5000, onProgress: (p) => repeat.push(p) });
    expect(repeat).toEqual([{ remaining: [], blocked: [] }]);
  });

  it('keeps asking while a PodDisruptionBudget refuses: times out retryable, then passes once the budget allows', async () => {
    const name = `nodes-${run}-pdb`;
    await node(name);
    await runningPod('guarded', name, { labels: { app: 'guarded' } });
    const pdbRef: ObjectRef = { apiVersion: 'policy/v1', kind: 'PodDisruptionBudget', namespace, name: 'guarded' };
    const pdb = await kube.apply<KubeObject>({
      apiVersion: pdbRef.apiVersion,
      kind: pdbRef.kind,
      metadata: { name: 'guarded', namespace },
      spec: { minAvailable: 1, selector: { matchLabels: { app: 'guarded' } } },
    });
    // The disruption controller (not running in the lab) would report this: one healthy pod, none to spare.
    const budget = (disruptionsAllowed: number) => ({
      observedGeneration: pdb.metadata.generation,
      currentHealthy: 1,
      desiredHealthy: 1,
      expectedPods: 1,
      disruptionsAllowed,
    });
    await kube.patchStatus(pdbRef, budget(0));

    const progress: DrainProgress[] = [];
    const started = Date.now();
    const err = await peerError(
      drainNode(kube, name, { timeoutMs: 1500, intervalMs: 200, onProgress: (p) => progress.push(p) }),
    );
    expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
    expect(err.retryable).toBe(true);
    expect(err.reason).toBe('DisruptionBudget');
    expect(err.message).toContain(`${namespace}/guarded`);
    expect(err.message).toMatch(/disruption budget/);
    // Every pass asked again.
    expect(progress.length).toBeGreaterThan(2);
    expect(progress.every((p) => p.blocked.length === 1 && p.blocked[0]?.pod === `${namespace}/guarded`)).toBe(true);
    const guarded = await kube.get(podRef('guarded'));
    expect(guarded.metadata.deletionTimestamp).toBeUndefined();
    expect((await kube.get<NodeObject>(nodeRef(name))).spec?.unschedulable).toBe(true);

    // The workload gains a replica elsewhere: the budget allows one disruption, and the drain under way goes through.
    const draining = drainNode(kube, name, { timeoutMs: 30_000, intervalMs: 200 });
    setTimeout(() => void kube.patchStatus(pdbRef, budget(1)), 600);
    await draining;
    expect(await kube.find(podRef('guarded'))).toBeUndefined();
    expect(await podsOn(name)).toEqual([]);
  });

  it('waits for a node to be Ready, and names what it waited for when it is not', async () => {
    const name = `nodes-${run}-ready`;
    const ready = Promise.all([waitNodeReady(kube, name, { timeoutMs: 30_000 }), node(name)]);
    const [readyNode] = await ready;
    expect(readyNode.metadata.name).toBe(name);
    expect(findCondition(readyNode, 'Ready')?.status).toBe('True');

    const err = await peerError(waitNodeReady(kube, `nodes-${run}-never`, { timeoutMs: 500 }));
    expect(err.retryable).toBe(true);
    expect(err.reason).toBe('Timeout');
    expect(err.message).toMatch(/Ready=True/);
  });

  it("finds a host's node by metal3 providerID, then by name or hostname label", async () => {
    const site = `s${run}`;
    const host = `h${run}-1`;
    // cluster-api-provider-metal3's node: named after the cluster, identified by providerID.
    await node(`${site}-${host}`, { providerID: `metal3://site-${site}/${host}/${site}-workers-${host}` });
    // A node named like the host, in another site, and one of a host whose name extends this one's: neither matches.
    await node(host);
    await node(`other-${host}`, { providerID: `metal3://site-other-${run}/${host}/m-${host}` });
    await node(`${site}-${host}0`, { providerID: `metal3://site-${site}/${host}0/m-${host}0` });
    expect((await findHostNode(kube, { site, host }))?.metadata.name).toBe(`${site}-${host}`);
    expect((await findHostNode(kube, { site, host: `${host}0` }))?.metadata.name).toBe(`${site}-${host}0`);

    // kubeadm sites: the node is named after the host, or at least labelled with its hostname.
    const kubeadmHost = `h${run}-2`;
    await node(kubeadmHost);
    expect((await findHostNode(kube, { site, host: kubeadmHost }))?.metadata.name).toBe(kubeadmHost);
    const labelled = `h${run}-3`;
    await node(`n${run}-3`, { labels: { 'kubernetes.io/hostname': labelled } });
    expect((await findHostNode(kube, { site, host: labelled }))?.metadata.name).toBe(`n${run}-3`);

    expect(await findHostNode(kube, { site, host: `h${run}-9` })).toBeUndefined();
  });

  it('deletes a node, idempotently', async () => {
    const name = `nodes-${run}-delete`;
    await node(name);
    await deleteNode(kube, name);
    expect(await kube.find(nodeRef(name))).toBeUndefined();
    await deleteNode(kube, name);
  });
});
