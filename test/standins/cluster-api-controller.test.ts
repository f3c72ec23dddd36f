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
  for (const ns of [namespace, failingNamespace]) {
    await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } });
  }
  standIn = startClusterApiStandIn({
    kubeconfig: lab.kubeconfig,
    ironic: { url: ironicInfo.url },
    namespaces: [namespace],
  });
  timersOnly = startClusterApiStandIn({
    kubeconfig: lab.kubeconfig,
    namespaces: [failingNamespace],
    failOn: { clusters: { doomed: 'Metal3Cluster doomed: no free hosts match the host selector' } },
  });
}, 900_000);

afterAll(async () => {
  await standIn.stop();
  await timersOnly.stop();
  if (standIn.problems.length > 0) console.log(`stand-in problems:\n${standIn.problems.join('\n')}`);
  kube.close();
});

const status = (o: KubeObject | undefined): Record<string, unknown> => (o?.status ?? {}) as Record<string, unknown>;
const hostState = (o: KubeObject | undefined): unknown =>
  (status(o).provisioning as { state?: string } | undefined)?.state;

function host(name: string, ns: string, annotations?: Record<string, string>): KubeObject {
  return {
    apiVersion: 'metal3.io/v1alpha1',
    kind: 'BareMetalHost',
    metadata: { name, namespace: ns, ...(annotations ? { annotations } : {}) },
    spec: {
      online: true,
      bootMACAddress: `52:54:00:5a:${Date.now().toString(16).slice(-2)}:${name.length.toString(16).padStart(2, '0')}`,
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

const bmhRef = (name: string, ns = namespace): ObjectRef => ({
  apiVersion: 'metal3.io/v1alpha1',
  kind: 'BareMetalHost',
  name,
  namespace: ns,
});

function clusterObjects(name: string, ns: string, version: string): KubeObject[] {
  const labels = { 'cluster.x-k8s.io/cluster-name': name };
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
        replicas: 2,
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
    await kube.apply(host(name, failingNamespace, { [failAnnotation]: 'provisioning' }));
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

  it('provisions a cluster: Cluster, KCP, MachineDeployment, Nodes and the kubeconfig Secret; then rolls a version', async () => {
    const name = 'edge';
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

    // kwok marks the stand-in's Nodes Ready, as kubelets joining would.
    const nodes = await kube.list('v1', 'Node', { labelSelector: `cluster.x-k8s.io/cluster-name=${name}` });
    const ours = nodes.filter((n) => n.metadata.name.startsWith(namespace));
    expect(ours).toHaveLength(3);
    for (const n of ours) {
      await kube.waitForCondition({ apiVersion: 'v1', kind: 'Node', name: n.metadata.name }, 'Ready', long);
    }

    const secret = await kube.readSecret(namespace, `${name}-kubeconfig`);
    expect(secret.value).toContain(lab.server);

    await kube.update(kcpRef, (o) => ({ ...o, spec: { ...(o.spec as object), version: 'v1.34.2' } }));
    const rolling = await kube.waitFor(kcpRef, (o) => status(o).updatedReplicas === 0, long);
    expect(status(rolling).version).toBe('v1.33.1');
    const rolled = await kube.waitFor(kcpRef, (o) => status(o).version === 'v1.34.2', long);
    expect(status(rolled).updatedReplicas).toBe(1);

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

    // Deleting the objects takes their Nodes and kubeconfig with them.
    for (const o of clusterObjects(name, namespace, 'v1.34.2').reverse()) {
      await kube.delete({ apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, namespace });
    }
    await kube.waitForGone({ apiVersion: 'v1', kind: 'Secret', name: `${name}-kubeconfig`, namespace }, long);
    for (const n of ours) await kube.waitForGone({ apiVersion: 'v1', kind: 'Node', name: n.metadata.name }, long);
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
