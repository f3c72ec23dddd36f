// Needs: the kubernetes lab peer (etcd + kube-apiserver + kwok, with the Cluster-API and metal3 CRDs).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { labUp } from '../../../deploy/dev/lab/index.ts';
import type { KubernetesLabInfo } from '../../../deploy/dev/lab/kubernetes.ts';
import { PeerError } from '../../../src/clients/errors.ts';
import {
  findCondition,
  type KubeObject,
  KubernetesClient,
  type ObjectRef,
  refOf,
} from '../../../src/clients/kubernetes/index.ts';
import { labPeer } from '../../support/lab.ts';

let lab: KubernetesLabInfo;
let client: KubernetesClient;
/** A namespace of its own per run: namespaces are never deleted here (no namespace controller runs in the lab). */
const namespace = `client-test-${Date.now().toString(36)}`;
let serial = 0;
const unique = (prefix: string): string => `${prefix}-${(serial++).toString()}`;

beforeAll(async () => {
  // Idempotent: reuses a running lab (the global setup's), else brings it up and names its error.
  await labUp(['kubernetes']);
  lab = labPeer('kubernetes') as KubernetesLabInfo;
  client = new KubernetesClient(lab.kubeconfig);
  await client.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
}, 900_000);

afterAll(() => {
  client.close();
});

const later = (ms: number, action: () => Promise<unknown>): Promise<unknown> =>
  new Promise((resolve, reject) => setTimeout(() => void action().then(resolve, reject), ms));

function cluster(name: string): KubeObject {
  return {
    apiVersion: 'cluster.x-k8s.io/v1beta1',
    kind: 'Cluster',
    metadata: { name, namespace, labels: { 'icn.akraino.org/site': 'site-a' } },
    spec: {
      clusterNetwork: { pods: { cidrBlocks: ['10.244.0.0/16'] }, services: { cidrBlocks: ['10.96.0.0/12'] } },
      controlPlaneRef: { apiVersion: 'controlplane.cluster.x-k8s.io/v1beta1', kind: 'KubeadmControlPlane', name },
      infrastructureRef: { apiVersion: 'infrastructure.cluster.x-k8s.io/v1beta1', kind: 'Metal3Cluster', name },
    },
  };
}

function bareMetalHost(name: string): KubeObject {
  return {
    apiVersion: 'metal3.io/v1alpha1',
    kind: 'BareMetalHost',
    metadata: { name, namespace },
    spec: {
      online: true,
      bootMACAddress: '52:54:00:00:00:01',
      bmc: { address: 'redfish://127.0.0.1:8000/redfish/v1/Systems/1', credentialsName: `${name}-bmc` },
      image: { url: 'http://127.0.0.1/images/ubuntu.qcow2', checksum: 'abc', checksumType: 'sha256', format: 'qcow2' },
    },
  };
}

const now = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

async function expectPeerError(promise: Promise<unknown>): Promise<PeerError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(PeerError);
    return err as PeerError;
  }
  throw new Error('expected a PeerError, but the call succeeded');
}

describe('the kubernetes lab peer', () => {
  it('serves the built version, with its fake nodes Ready and a warm up that reuses it', async () => {
    expect((await client.version()).gitVersion).toBe('v1.34.2');
    for (const name of lab.nodes) {
      const node = await client.get({ apiVersion: 'v1', kind: 'Node', name });
      expect(findCondition(node, 'Ready')?.status).toBe('True');
    }
    const started = Date.now();
    const [again] = await labUp(['kubernetes']);
    expect(again?.error).toBeUndefined();
    expect((again?.info as KubernetesLabInfo).server).toBe(lab.server);
    expect(Date.now() - started).toBeLessThan(5000);
  });

  it('has the Cluster-API and metal3 CRDs established', async () => {
    for (const name of [
      'clusters.cluster.x-k8s.io',
      'machinedeployments.cluster.x-k8s.io',
      'kubeadmcontrolplanes.controlplane.cluster.x-k8s.io',
      'kubeadmconfigtemplates.bootstrap.cluster.x-k8s.io',
      'baremetalhosts.metal3.io',
      'metal3clusters.infrastructure.cluster.x-k8s.io',
      'metal3machinetemplates.infrastructure.cluster.x-k8s.io',
    ]) {
      const crd = await client.get({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name });
      expect(findCondition(crd, 'Established')?.status).toBe('True');
    }
  });
});

describe('KubernetesClient', () => {
  it('applies a Cluster, waits for the status a controller sets, deletes it and waits until it is gone', async () => {
    const applied = await client.apply(cluster(unique('edge')));
    const ref = refOf(applied);
    expect(applied.metadata.uid).toBeDefined();
    const started = Date.now();
    const controller = later(1500, () =>
      client.patchStatus(ref, {
        phase: 'Provisioned',
        infrastructureReady: true,
        controlPlaneReady: true,
        conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now() }],
      }),
    );
    const ready = await client.waitForCondition(ref, 'Ready', { timeoutMs: 30_000 });
    await controller;
    expect(Date.now() - started).toBeGreaterThanOrEqual(1400);
    expect((ready.status as { phase?: string }).phase).toBe('Provisioned');
    expect((await client.get(ref)).status).toMatchObject({ phase: 'Provisioned', controlPlaneReady: true });

    await client.delete(ref, { waitMs: 30_000 });
    expect(await client.find(ref)).toBeUndefined();
  });

  it('applies a BareMetalHost and sees it provisioned, then deleted', async () => {
    const ref = refOf(await client.apply(bareMetalHost(unique('host'))));
    const provisioned = (o: KubeObject | undefined): boolean =>
      (o?.status as { provisioning?: { state?: string } } | undefined)?.provisioning?.state === 'provisioned';
    const controller = later(1000, async () => {
      await client.patchStatus(ref, { operationalStatus: 'OK', provisioning: { state: 'provisioning' } });
      await client.patchStatus(ref, { poweredOn: true, provisioning: { state: 'provisioned' } });
    });
    const host = await client.waitFor(ref, provisioned, { timeoutMs: 30_000, description: 'provisioned' });
    await controller;
    expect(host?.status).toMatchObject({ operationalStatus: 'OK', poweredOn: true });
    await client.delete(ref);
    expect(await client.find(ref)).toBeUndefined();
  });

  it('applies idempotently: the same object twice leaves the resourceVersion alone, a change moves it', async () => {
    const object = cluster(unique('idem'));
    const first = await client.apply(object);
    const second = await client.apply(object);
    expect(second.metadata.resourceVersion).toBe(first.metadata.resourceVersion);
    const managers = (second.metadata.managedFields as { manager: string }[]).map((m) => m.manager);
    expect(managers).toContain('icn-orchestrator');

    const changed = await client.apply({ ...object, metadata: { ...object.metadata, labels: { tier: 'edge' } } });
    expect(changed.metadata.resourceVersion).not.toBe(first.metadata.resourceVersion);
    // Server-side apply drops the label this manager no longer sets.
    expect(changed.metadata.labels).toEqual({ tier: 'edge' });
  });

  it('reports a missing object as a non-retryable NotFound naming it', async () => {
    const ref: ObjectRef = { apiVersion: 'cluster.x-k8s.io/v1beta1', kind: 'Cluster', namespace, name: 'no-such' };
    const err = await expectPeerError(client.get(ref));
    expect(err).toMatchObject({ peer: 'kubernetes', retryable: false, reason: 'NotFound' });
    expect(err.message).toContain(`Cluster ${namespace}/no-such`);
    expect(err.message).toContain('not found');
    expect(await client.find(ref)).toBeUndefined();
  });

  it('reports an invalid object as a non-retryable Invalid with the server message', async () => {
    const host = bareMetalHost(unique('bad'));
    const err = await expectPeerError(client.apply({ ...host, spec: { bmc: { address: 'ipmi://x' } } }));
    expect(err).toMatchObject({ retryable: false, reason: 'Invalid' });
    expect(err.message).toContain(`BareMetalHost ${namespace}/${host.metadata.name}`);
    expect(err.message).toContain('spec.online');
  });

  it('reports an unknown kind as non-retryable', async () => {
    const err = await expectPeerError(client.get({ apiVersion: 'metal3.io/v1alpha1', kind: 'NoSuchKind', name: 'x' }));
    expect(err).toMatchObject({ retryable: false, reason: 'UnknownKind' });
  });

  it('reports an unreachable server as retryable', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'kubeconfig-'));
    const path = join(dir, 'kubeconfig');
    // Port 1 on loopback: nothing listens there, so the connection is refused at once.
    writeFileSync(path, readFileSync(lab.kubeconfig, 'utf8').replace(lab.server, 'https://127.0.0.1:1'));
    const unreachable = new KubernetesClient(path);
    try {
      const err = await expectPeerError(unreachable.get({ apiVersion: 'v1', kind: 'Namespace', name: 'default' }));
      expect(err).toMatchObject({ retryable: true, reason: 'Unreachable' });
      expect(err.message).toContain('ECONNREFUSED');
    } finally {
      unreachable.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('still sees a change after its watch connection drops, by listing again', async () => {
    const ref = refOf(await client.apply(cluster(unique('drop'))));
    const sources: string[] = [];
    const waiting = client.waitForCondition(ref, 'Ready', {
      timeoutMs: 30_000,
      onProgress: (_o, source) => sources.push(source),
    });
    await new Promise((resolve) => setTimeout(resolve, 1000));
    client.dropConnections();
    await new Promise((resolve) => setTimeout(resolve, 500));
    await client.patchStatus(ref, { conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now() }] });
    const ready = await waiting;
    expect(findCondition(ready, 'Ready')?.status).toBe('True');
    expect(sources.filter((s) => s === 'list').length).toBeGreaterThanOrEqual(2);
  });

  it('still sees a change made while no watch was open (short server-side watch timeout)', async () => {
    const ref = refOf(await client.apply(cluster(unique('short'))));
    const sources: string[] = [];
    const controller = later(2500, () =>
      client.patchStatus(ref, { conditions: [{ type: 'Ready', status: 'True', lastTransitionTime: now() }] }),
    );
    await client.waitForCondition(ref, 'Ready', {
      timeoutMs: 30_000,
      watchTimeoutSeconds: 1,
      onProgress: (_o, source) => sources.push(source),
    });
    await controller;
    expect(sources.filter((s) => s === 'list').length).toBeGreaterThanOrEqual(2);
  });

  it('fails a wait at its deadline with a retryable Timeout naming the object and its last state', async () => {
    const ref = refOf(await client.apply(cluster(unique('late'))));
    const err = await expectPeerError(client.waitForCondition(ref, 'Ready', { timeoutMs: 1500 }));
    expect(err).toMatchObject({ retryable: true, reason: 'Timeout' });
    expect(err.message).toContain(`Cluster ${ref.namespace ?? ''}/${ref.name}`);
    expect(err.message).toContain('Ready=True');
  });

  it('retries an update that lost a race (409) on a fresh read', async () => {
    const ref = refOf(await client.apply(bareMetalHost(unique('race'))));
    const other = new KubernetesClient(lab.kubeconfig);
    let calls = 0;
    const updated = await client.update(ref, async (current) => {
      calls++;
      if (calls === 1) {
        // Someone else writes between our read and our write: our write must be refused, then redone.
        await other.update(ref, (o) => ({ ...o, spec: { ...(o.spec as object), online: false } }));
      }
      return { ...current, metadata: { ...current.metadata, labels: { ...current.metadata.labels, drained: 'yes' } } };
    });
    other.close();
    expect(calls).toBe(2);
    expect(updated.metadata.labels).toMatchObject({ drained: 'yes' });
    expect((updated.spec as { online: boolean }).online).toBe(false);
  });

  it('updates from a copy the caller already holds without reading it again; a stale copy is refused and redone', async () => {
    const ref = refOf(await client.apply(bareMetalHost(unique('known'))));
    const held = await client.get(ref);
    const seen: (string | undefined)[] = [];
    const label = (value: string) => (current: typeof held) => {
      seen.push(current.metadata.resourceVersion);
      return { ...current, metadata: { ...current.metadata, labels: { ...current.metadata.labels, step: value } } };
    };
    const first = await client.update(ref, label('one'), { known: held });
    // The change was given the held copy itself: nothing was read in between.
    expect(seen).toEqual([held.metadata.resourceVersion]);
    expect(first.metadata.labels).toMatchObject({ step: 'one' });
    // `held` is stale now: the write with its version is refused (409), and the retry reads the stored object.
    seen.length = 0;
    const second = await client.update(ref, label('two'), { known: held });
    expect(seen).toEqual([held.metadata.resourceVersion, first.metadata.resourceVersion]);
    expect((await client.get(ref)).metadata.labels).toMatchObject({ step: 'two' });
    expect(second.metadata.resourceVersion).not.toBe(first.metadata.resourceVersion);
  });

  it('reads a Secret with its values decoded', async () => {
    const name = unique('bmc');
    await client.apply({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name, namespace },
      type: 'Opaque',
      data: { username: Buffer.from('admin').toString('base64'), password: Buffer.from('s3cr3t!').toString('base64') },
    });
    expect(await client.readSecret(namespace, name)).toEqual({ username: 'admin', password: 's3cr3t!' });
    const err = await expectPeerError(client.readSecret(namespace, 'missing'));
    expect(err.reason).toBe('NotFound');
  });

  it('gets a new Node Ready through kwok, and a pod bound to a lab node Running', async () => {
    const name = unique('test-node');
    await client.apply({
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name, annotations: { 'kwok.x-k8s.io/node': 'fake' }, labels: { type: 'kwok' } },
      status: {
        capacity: { cpu: '4', memory: '8Gi', pods: '110' },
        allocatable: { cpu: '4', memory: '8Gi', pods: '110' },
      },
    });
    const ref: ObjectRef = { apiVersion: 'v1', kind: 'Node', name };
    const node = await client.waitForCondition(ref, 'Ready', { timeoutMs: 60_000 });
    expect(findCondition(node, 'Ready')?.status).toBe('True');

    const pod = await client.apply({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: unique('app'), namespace },
      spec: { nodeName: lab.nodes[0], containers: [{ name: 'app', image: 'registry.example/app:1.0' }] },
    });
    const running = await client.waitFor(
      refOf(pod),
      (o) => (o?.status as { phase?: string } | undefined)?.phase === 'Running',
      { timeoutMs: 60_000, description: 'Running' },
    );
    expect(running?.status).toMatchObject({ phase: 'Running' });
    await client.delete(refOf(pod), { waitMs: 60_000 });
    await client.delete(ref, { waitMs: 60_000 });
    expect(await client.find(ref)).toBeUndefined();
  });
});
