// Needs: the kubernetes lab peer (kube-apiserver + kwok with the Cluster-API and metal3 CRDs) and the ironic lab peer.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { labUp } from '../../deploy/dev/lab/index.ts';
import type { IronicLabInfo } from '../../deploy/dev/lab/ironic.ts';
import type { KubernetesLabInfo } from '../../deploy/dev/lab/kubernetes.ts';
import { IronicClient } from '../../src/clients/ironic/index.ts';
import {
  findCondition,
  type KubeObject,
  KubernetesClient,
  type ObjectRef,
} from '../../src/clients/kubernetes/index.ts';
import { labPeer } from '../support/lab.ts';
import { ironicNodeName } from './baremetal-host.ts';
import { type ClusterApiStandIn, failAnnotation, startClusterApiStandIn } from './cluster-api-controller.ts';

/** Namespaces are never deleted in the lab (no namespace controller): one of its own per run. */
const namespace = `standin-${Date.now().toString(36)}`;
const failingNamespace = `${namespace}-f`;
/** Like a site's namespace, whose prefix the stand-in leaves out of Node names. */
const hostsNamespace = `site-${namespace}-h`;
const roleLabel = 'icn.akraino.org/role';
const long = { timeoutMs: 120_000 };

let lab: KubernetesLabInfo;
let ironicInfo: IronicLabInfo;
let kube: KubernetesClient;
let ironic: IronicClient;
let standIn: ClusterApiStandIn;
let timersOnly: ClusterApiStandIn;

beforeAll(async () => {
  await labUp(['kubernetes', 'ironic']);
  lab = labPeer('kubernetes') as KubernetesLabInfo;
  ironicInfo = labPeer('ironic') as IronicLabInfo;
  kube = new KubernetesClient(lab.kubeconfig);
  ironic = new IronicClient({ url: ironicInfo.url });
  for (const ns of [namespace, failingNamespace, hostsNamespace]) {
    await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  }
  standIn = startClusterApiStandIn({
    kubeconfig: lab.kubeconfig,
    ironic: { url: ironicInfo.url },
    namespaces: [namespace],
  });
  timersOnly = startClusterApiStandIn({
    kubeconfig: lab.kubeconfig,
    namespaces: [failingNamespace, hostsNamespace],
    failOn: { clusters: { doomed: 'Metal3Cluster doomed: no free hosts match the host selector' } },
  });
}, 900_000);

afterAll(async () => {
  await standIn.stop();
  await timersOnly.stop();
  for (const s of [standIn, timersOnly]) {
    if (s.problems.length > 0) console.log(`stand-in problems:\n${s.problems.join('\n')}`);
  }
  kube.close();
});

const status = (o: KubeObject | undefined): Record<string, unknown> => (o?.status ?? {}) as Record<string, unknown>;
const hostState = (o: KubeObject | undefined): unknown =>
  (status(o).provisioning as { state?: string } | undefined)?.state;

let macs = 0;

function host(
  name: string,
  ns: string,
  meta: { annotations?: Record<string, string>; labels?: Record<string, string> } = {},
): KubeObject {
  return {
    apiVersion: 'metal3.io/v1alpha1',
    kind: 'BareMetalHost',
    metadata: { name, namespace: ns, ...meta },
    spec: {
      online: true,
      // Ironic refuses a MAC another node's port has.
      bootMACAddress: `52:54:00:5a:${Date.now().toString(16).slice(-2)}:${(macs++).toString(16).padStart(2, '0')}`,
      bmc: { address: 'ipmi://192.0.2.10', credentialsName: `${name}-bmc` },
      image: { url: 'http://127.0.0.1:1/edge.qcow2', checksum: 'a'.repeat(64), checksumType: 'sha256' },
    },
  };
}

async function credentials(name: string, ns: string): Promise<void> {
  await kube.apply({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: `${name}-bmc`, namespace: ns },
    data: { username: Buffer.from('admin').toString('base64'), password: Buffer.from('pw').toString('base64') },
  });
}

const nodeRef = (name: string): ObjectRef => ({ apiVersion: 'v1', kind: 'Node', name });
const kubeletVersion = (o: KubeObject | undefined): unknown =>
  (status(o).nodeInfo as { kubeletVersion?: string } | undefined)?.kubeletVersion;
const consumer = (o: KubeObject | undefined): { name?: string } | undefined =>
  (o?.spec as { consumerRef?: { name?: string } } | undefined)?.consumerRef;

const bmhRef = (name: string, ns = namespace): ObjectRef => ({
  apiVersion: 'metal3.io/v1alpha1',
  kind: 'BareMetalHost',
  name,
  namespace: ns,
});

function clusterObjects(name: string, ns: string, version: string, workers = 2): KubeObject[] {
  const labels = { 'cluster.x-k8s.io/cluster-name': name };
  const machineTemplate = (templateName: string, role: string): KubeObject => ({
    apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta1',
    kind: 'Metal3MachineTemplate',
    metadata: { name: templateName, namespace: ns, labels },
    spec: {
      template: {
        spec: {
          image: { url: 'http://127.0.0.1:1/edge.qcow2', checksum: 'a'.repeat(64), checksumType: 'sha256' },
          hostSelector: { matchLabels: { [roleLabel]: role } },
        },
      },
    },
  });
  return [
    {
      apiVersion: 'cluster.x-k8s.io/v1beta1',
      kind: 'Cluster',
      metadata: { name, namespace: ns, labels },
      spec: {
        controlPlaneRef: {
          apiVersion: 'controlplane.cluster.x-k8s.io/v1beta1',
          kind: 'KubeadmControlPlane',
          name: `${name}-cp`,
        },
        infrastructureRef: { apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta1', kind: 'Metal3Cluster', name },
      },
    },
    {
      apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta1',
      kind: 'Metal3Cluster',
      metadata: { name, namespace: ns, labels },
      spec: { controlPlaneEndpoint: { host: '192.0.2.1', port: 6443 } },
    },
    machineTemplate(`${name}-cp`, 'control-plane'),
    machineTemplate(`${name}-md`, 'worker'),
    {
      apiVersion: 'controlplane.cluster.x-k8s.io/v1beta1',
      kind: 'KubeadmControlPlane',
      metadata: { name: `${name}-cp`, namespace: ns, labels },
      spec: {
        replicas: 1,
        version,
        machineTemplate: {
          infrastructureRef: {
            apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta1',
            kind: 'Metal3MachineTemplate',
            name: `${name}-cp`,
          },
        },
        kubeadmConfigSpec: {},
      },
    },
    {
      apiVersion: 'cluster.x-k8s.io/v1beta1',
      kind: 'MachineDeployment',
      metadata: { name: `${name}-md`, namespace: ns, labels },
      spec: {
        clusterName: name,
        replicas: workers,
        selector: { matchLabels: {} },
        template: {
          spec: {
            clusterName: name,
            version,
            bootstrap: {
              configRef: {
                apiVersion: 'bootstrap.cluster.x-k8s.io/v1beta1',
                kind: 'KubeadmConfigTemplate',
                name: `${name}-md`,
              },
            },
            infrastructureRef: {
              apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta1',
              kind: 'Metal3MachineTemplate',
              name: `${name}-md`,
            },
          },
        },
      },
    },
  ];
}

describe('the Cluster-API and metal3 stand-in', () => {
  it('moves a BareMetalHost to provisioned through a real Ironic node, and deprovisions it on delete', async () => {
    const name = 'bmh-0';
    await credentials(name, namespace);
    await kube.apply(host(name, namespace));
    const seen = new Set<unknown>();
    const provisioned = await kube.waitFor(bmhRef(name), (o) => hostState(o) === 'provisioned', {
      ...long,
      onProgress: (o) => seen.add(hostState(o)),
    });
    expect([...seen]).toEqual(expect.arrayContaining(['registering', 'inspecting', 'available', 'provisioning']));
    expect(status(provisioned)).toMatchObject({ operationalStatus: 'OK', poweredOn: true, errorMessage: '' });
    const node = await ironic.get(ironicNodeName(provisioned!));
    expect(node.provision_state).toBe('active');
    expect((status(provisioned).provisioning as { ID: string }).ID).toBe(node.uuid);
    expect(node.instance_info.image_source).toBe('http://127.0.0.1:1/edge.qcow2');

    await kube.delete(bmhRef(name), { waitMs: 120_000 });
    expect(await ironic.find(ironicNodeName(provisioned!))).toBeUndefined();
  }, 240_000);

  it('fails a host on demand with the operator error fields', async () => {
    const name = 'bmh-fail';
    await credentials(name, failingNamespace);
    await kube.apply(host(name, failingNamespace, { annotations: { [failAnnotation]: 'provisioning' } }));
    const failed = await kube.waitFor(
      bmhRef(name, failingNamespace),
      (o) => status(o).operationalStatus === 'error',
      long,
    );
    expect(status(failed)).toMatchObject({ errorType: 'provisioning error', operationalStatus: 'error' });
    expect(status(failed).errorMessage).toMatch(/failed while provisioning/);
    expect(hostState(failed)).toBe('provisioning');
  });

  it('keeps a host without its BMC credentials Secret registering', async () => {
    const name = 'bmh-nocreds';
    await kube.apply(host(name, failingNamespace));
    const waiting = await kube.waitFor(
      bmhRef(name, failingNamespace),
      (o) => typeof status(o).errorMessage === 'string' && status(o).errorMessage !== '',
      long,
    );
    expect(hostState(waiting)).toBe('registering');
    expect(status(waiting).errorMessage).toMatch(/bmh-nocreds-bmc not found/);
    expect(status(waiting).operationalStatus).toBe('discovered');
  });

  it('provisions a cluster on its hosts: Cluster, KCP, MachineDeployment, a Node per host, the kubeconfig Secret; then rolls a version', async () => {
    const name = 'edge';
    const roles = { 'edge-cp-0': 'control-plane', 'edge-w-0': 'worker', 'edge-w-1': 'worker' } as const;
    const hosts = Object.keys(roles) as (keyof typeof roles)[];
    const ownerOf = (h: keyof typeof roles): string => (roles[h] === 'control-plane' ? `${name}-cp` : `${name}-md`);
    // As a site's activities do: the hosts provisioned first, then the cluster objects.
    for (const h of hosts) {
      await credentials(h, namespace);
      await kube.apply(host(h, namespace, { labels: { [roleLabel]: roles[h] } }));
    }
    for (const h of hosts) await kube.waitFor(bmhRef(h), (o) => hostState(o) === 'provisioned', long);
    for (const o of clusterObjects(name, namespace, 'v1.33.1')) await kube.apply(o);
    const clusterRef: ObjectRef = { apiVersion: 'cluster.x-k8s.io/v1beta1', kind: 'Cluster', name, namespace };
    const cluster = await kube.waitFor(clusterRef, (o) => status(o).phase === 'Provisioned', long);
    expect(status(cluster)).toMatchObject({ infrastructureReady: true, controlPlaneReady: true });
    expect(findCondition(cluster, 'Ready')?.status).toBe('True');

    const kcpRef: ObjectRef = {
      apiVersion: 'controlplane.cluster.x-k8s.io/v1beta1',
      kind: 'KubeadmControlPlane',
      name: `${name}-cp`,
      namespace,
    };
    expect(status(await kube.get(kcpRef))).toMatchObject({
      readyReplicas: 1,
      version: 'v1.33.1',
      initialized: true,
      ready: true,
    });
    const mdRef: ObjectRef = {
      apiVersion: 'cluster.x-k8s.io/v1beta1',
      kind: 'MachineDeployment',
      name: `${name}-md`,
      namespace,
    };
    const md = await kube.waitFor(mdRef, (o) => status(o).phase === 'Running', long);
    expect(status(md)).toMatchObject({ readyReplicas: 2, replicas: 2, updatedReplicas: 2 });

    // One Node per host, named after the namespace and the host, its providerID the way the metal3 provider sets it.
    const nodeOf = (h: string): string => `${namespace}-${h}`;
    const nodes = await kube.list('v1', 'Node', { labelSelector: `cluster.x-k8s.io/cluster-name=${name}` });
    const ours = nodes.filter((n) => n.metadata.name.startsWith(namespace));
    expect(ours.map((n) => n.metadata.name).sort()).toEqual(hosts.map(nodeOf).sort());
    for (const h of hosts) {
      const node = ours.find((n) => n.metadata.name === nodeOf(h));
      expect(node?.spec).toMatchObject({ providerID: `metal3://${namespace}/${h}/${ownerOf(h)}-${h}` });
      expect(kubeletVersion(node)).toBe('v1.33.1');
      expect((await kube.get(bmhRef(h))).spec).toMatchObject({
        consumerRef: {
          apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta1',
          kind: 'Metal3Machine',
          name: `${ownerOf(h)}-${h}`,
          namespace,
        },
      });
      // kwok marks the stand-in's Nodes Ready, as kubelets joining would.
      await kube.waitForCondition(nodeRef(nodeOf(h)), 'Ready', long);
    }
    const roleLabels = (h: string) => ours.find((n) => n.metadata.name === nodeOf(h))?.metadata.labels ?? {};
    expect(roleLabels('edge-cp-0')['node-role.kubernetes.io/control-plane']).toBe('');
    expect(roleLabels('edge-w-0')['node-role.kubernetes.io/control-plane']).toBeUndefined();

    const secret = await kube.readSecret(namespace, `${name}-kubeconfig`);
    expect(secret.value).toContain(lab.server);

    await kube.update(kcpRef, (o) => ({ ...o, spec: { ...(o.spec as object), version: 'v1.34.2' } }));
    const rolling = await kube.waitFor(kcpRef, (o) => status(o).updatedReplicas === 0, long);
    expect(status(rolling).version).toBe('v1.33.1');
    const rolled = await kube.waitFor(kcpRef, (o) => status(o).version === 'v1.34.2', long);
    expect(status(rolled).updatedReplicas).toBe(1);
    // The control plane's kubelet follows its rollout; the workers' have not moved.
    expect(kubeletVersion(await kube.get(nodeRef(nodeOf('edge-cp-0'))))).toBe('v1.34.2');
    expect(kubeletVersion(await kube.get(nodeRef(nodeOf('edge-w-0'))))).toBe('v1.33.1');

    const before = await kube.get(mdRef);
    await kube.update(mdRef, (o) => {
      const spec = o.spec as { template: { spec: { version: string } } };
      spec.template.spec.version = 'v1.34.2';
      return o;
    });
    const mdRolled = await kube.waitFor(
      mdRef,
      (o) =>
        status(o).observedGeneration === o?.metadata.generation &&
        (o?.metadata.generation ?? 0) > (before.metadata.generation ?? 0) &&
        status(o).updatedReplicas === 2,
      long,
    );
    expect(status(mdRolled).phase).toBe('Running');
    for (const h of ['edge-w-0', 'edge-w-1']) {
      expect(kubeletVersion(await kube.get(nodeRef(nodeOf(h))))).toBe('v1.34.2');
    }

    // Deleting the objects takes their Nodes and kubeconfig with them, and frees the hosts.
    for (const o of clusterObjects(name, namespace, 'v1.34.2').reverse()) {
      await kube.delete({ apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, namespace });
    }
    await kube.waitForGone({ apiVersion: 'v1', kind: 'Secret', name: `${name}-kubeconfig`, namespace }, long);
    for (const h of hosts) {
      await kube.waitForGone(nodeRef(nodeOf(h)), long);
      await kube.waitFor(bmhRef(h), (o) => consumer(o) === undefined, long);
    }
    // The hosts' Ironic nodes go with them.
    for (const h of hosts) await kube.delete(bmhRef(h), { waitMs: 0 });
    for (const h of hosts) await kube.waitForGone(bmhRef(h), long);
  }, 240_000);

  it('gives each machine a matching provisioned host: fewer hosts, fewer Nodes; released on scale down, deprovisioning and deletion', async () => {
    const ns = hostsNamespace;
    const name = 'lab';
    // The namespace without its `site-` prefix, as for a site.
    const nodeOf = (h: string): string => `${namespace}-h-${h}`;
    const roles: Record<string, string> = { cp: 'control-plane', 'w-1': 'worker', 'w-2': 'worker', other: 'storage' };
    const addHost = async (h: string, role: string): Promise<void> => {
      await credentials(h, ns);
      await kube.apply(host(h, ns, { labels: { [roleLabel]: role } }));
    };
    for (const [h, role] of Object.entries(roles)) await addHost(h, role);
    for (const h of Object.keys(roles)) await kube.waitFor(bmhRef(h, ns), (o) => hostState(o) === 'provisioned', long);

    for (const o of clusterObjects(name, ns, 'v1.34.2', 3)) await kube.apply(o);
    const mdRef: ObjectRef = {
      apiVersion: 'cluster.x-k8s.io/v1beta1',
      kind: 'MachineDeployment',
      name: `${name}-md`,
      namespace: ns,
    };
    const workerNodes = async (): Promise<string[]> =>
      (
        await kube.list('v1', 'Node', {
          labelSelector: `standin.icn.test/owner=${name}-md,standin.icn.test/owner-namespace=${ns}`,
        })
      )
        .map((n) => n.metadata.name)
        .sort();
    const bound = async (h: string): Promise<string | undefined> => consumer(await kube.get(bmhRef(h, ns)))?.name;

    // Three workers wanted, two worker hosts: two Nodes, and the deployment scaling up.
    const short = await kube.waitFor(mdRef, (o) => status(o).readyReplicas === 2, long);
    expect(status(short)).toMatchObject({ phase: 'ScalingUp', replicas: 3, readyReplicas: 2, unavailableReplicas: 1 });
    expect(findCondition(short, 'Ready')).toMatchObject({
      status: 'False',
      message: '2 of 3 machines have a BareMetalHost',
    });
    expect(await workerNodes()).toEqual([nodeOf('w-1'), nodeOf('w-2')]);
    await kube.waitFor(nodeRef(nodeOf('cp')), (o) => o !== undefined, long);
    expect(await bound('other')).toBeUndefined();
    expect(await kube.find(nodeRef(nodeOf('other')))).toBeUndefined();

    // A third worker host: the third machine takes it, the others keep theirs.
    await addHost('w-3', 'worker');
    const full = await kube.waitFor(mdRef, (o) => status(o).phase === 'Running', long);
    expect(status(full)).toMatchObject({ readyReplicas: 3, unavailableReplicas: 0 });
    expect(await workerNodes()).toEqual([nodeOf('w-1'), nodeOf('w-2'), nodeOf('w-3')]);
    expect((await kube.get(nodeRef(nodeOf('w-3')))).spec).toMatchObject({
      providerID: `metal3://${ns}/w-3/${name}-md-w-3`,
    });
    expect(await bound('w-1')).toBe(`${name}-md-w-1`);

    // Scale down: one machine goes, its Node with it, its host is free again.
    await kube.update(mdRef, (o) => ({ ...o, spec: { ...(o.spec as object), replicas: 2 } }));
    await kube.waitForGone(nodeRef(nodeOf('w-3')), long);
    await kube.waitFor(bmhRef('w-3', ns), (o) => consumer(o) === undefined, long);
    expect(await workerNodes()).toEqual([nodeOf('w-1'), nodeOf('w-2')]);

    // A host deprovisioned (its image removed): its machine's Node goes, and the free host replaces it.
    await kube.update(bmhRef('w-1', ns), (o) => {
      const { image: _image, ...spec } = o.spec as Record<string, unknown>;
      return { ...o, spec };
    });
    await kube.waitForGone(nodeRef(nodeOf('w-1')), long);
    await kube.waitFor(bmhRef('w-1', ns), (o) => consumer(o) === undefined, long);
    await kube.waitFor(nodeRef(nodeOf('w-3')), (o) => o !== undefined, long);
    expect(await bound('w-3')).toBe(`${name}-md-w-3`);
    expect(await workerNodes()).toEqual([nodeOf('w-2'), nodeOf('w-3')]);

    // A host deleted: its Node goes, and with no host left the deployment is short again.
    await kube.delete(bmhRef('w-2', ns), { waitMs: 0 });
    await kube.waitForGone(nodeRef(nodeOf('w-2')), long);
    await kube.waitForGone(bmhRef('w-2', ns), long);
    const shortAgain = await kube.waitFor(mdRef, (o) => status(o).readyReplicas === 1, long);
    expect(status(shortAgain).phase).toBe('ScalingUp');
    expect(await workerNodes()).toEqual([nodeOf('w-3')]);

    for (const o of clusterObjects(name, ns, 'v1.34.2').reverse()) {
      await kube.delete({ apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, namespace: ns });
    }
    for (const h of ['cp', 'w-3']) {
      await kube.waitForGone(nodeRef(nodeOf(h)), long);
      await kube.waitFor(bmhRef(h, ns), (o) => consumer(o) === undefined, long);
    }
  }, 240_000);

  it('fails a Cluster on demand: phase Failed with the failure message', async () => {
    for (const o of clusterObjects('doomed', failingNamespace, 'v1.34.2')) await kube.apply(o);
    const failed = await kube.waitFor(
      { apiVersion: 'cluster.x-k8s.io/v1beta1', kind: 'Cluster', name: 'doomed', namespace: failingNamespace },
      (o) => status(o).phase === 'Failed',
      long,
    );
    expect(status(failed)).toMatchObject({
      failureReason: 'CreateError',
      failureMessage: 'Metal3Cluster doomed: no free hosts match the host selector',
    });
  });
});
