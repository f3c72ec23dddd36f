// Needs: the kubernetes lab peer (kube-apiserver + kwok with the Cluster-API and metal3 CRDs) and the ironic lab peer,
// with the Cluster-API/metal3 stand-in (test/standins) playing the controllers.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { readFileSync } from 'node:fs';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { labUp } from '../../deploy/dev/lab/index.ts';
import type { IronicLabInfo } from '../../deploy/dev/lab/ironic.ts';
import type { KubernetesLabInfo } from '../../deploy/dev/lab/kubernetes.ts';
import {
  clusterNames,
  createClusterActivities,
  type HostsProgress,
  type SiteTarget,
  siteNamespace,
} from '../../src/activities/cluster.ts';
import { IronicClient } from '../../src/clients/ironic/index.ts';
import { type KubeObject, KubernetesClient, kubernetesClient } from '../../src/clients/kubernetes/index.ts';
import { SitePlan } from '../../src/domain/plan.ts';
import type { Store } from '../../src/store/index.ts';
import { labPeer } from '../support/lab.ts';
import { openTestStore } from '../support/store.ts';
import { ironicNodeName } from '../standins/baremetal-host.ts';
import { type ClusterApiStandIn, startClusterApiStandIn } from '../standins/cluster-api-controller.ts';

const run = Date.now().toString(36);
const site = `capi-${run}`;
const failingSite = `capi-${run}-f`;
const password = `bmc-pw-${run}`;

let lab: KubernetesLabInfo;
let store: Store;
let kube: KubernetesClient;
let ironic: IronicClient;
let standIn: ClusterApiStandIn;
let failing: ClusterApiStandIn;
let activities: ReturnType<typeof createClusterActivities>;

function plan(name: string): SitePlan {
  const host = (n: number, role: 'control-plane' | 'worker') => ({
    name: `host-${n}`,
    role,
    bmc: { address: `ipmi://192.0.2.${10 + n}`, credentialsRef: { name: 'bmc' } },
    bootMacAddress: `52:54:00:ca:${run
      .slice(-2)
      .padStart(2, '0')
      .replace(/[^0-9a-f]/g, 'a')}:0${n}`,
    rootDeviceHints: { deviceName: '/dev/sda' },
    ssh: { address: '127.0.0.1', keyRef: { name: 'ssh' } },
  });
  return SitePlan.parse({
    site: name,
    spec: {
      endpoints: {
        ironicUrl: 'http://127.0.0.1:6385',
        bpaUrl: 'http://127.0.0.1:9015',
        bootstrapKubeconfigRef: { name: 'bootstrap-kubeconfig' },
      },
      cluster: {
        kubernetesVersion: '1.33.1',
        controlPlaneEndpoint: { host: '192.0.2.1' },
        provisioner: 'cluster-api',
      },
      softwareProfile: { name: 'edge', version: '1.0.0' },
      hosts: [host(0, 'control-plane'), host(1, 'worker'), host(2, 'worker')],
    },
    profile: { name: 'edge', version: '1.0.0', spec: { version: '1.0.0', osImage: { sha256: 'b'.repeat(64) } } },
  });
}

beforeAll(async () => {
  await labUp(['kubernetes', 'ironic']);
  lab = labPeer('kubernetes') as KubernetesLabInfo;
  const ironicInfo = labPeer('ironic') as IronicLabInfo;
  kube = new KubernetesClient(lab.kubeconfig);
  ironic = new IronicClient({ url: ironicInfo.url });
  store = await openTestStore('pglite');
  await store.secrets.put({ name: 'bootstrap-kubeconfig' }, 'kubeconfig', {
    kubeconfig: readFileSync(lab.kubeconfig, 'utf8'),
  });
  await store.secrets.put({ name: 'bmc' }, 'bmc-credentials', { username: 'admin', password });
  activities = createClusterActivities({
    kube: kubernetesClient,
    secrets: store.secrets,
    sites: { get: async (name) => ({ spec: plan(name).spec }) },
    waitTimeoutMs: 180_000,
    heartbeatIntervalMs: 1000,
  });
  standIn = startClusterApiStandIn({
    kubeconfig: lab.kubeconfig,
    ironic: { url: ironicInfo.url },
    namespaces: [siteNamespace(site)],
  });
  failing = startClusterApiStandIn({
    kubeconfig: lab.kubeconfig,
    namespaces: [siteNamespace(failingSite)],
    failOn: {
      hosts: { 'host-2': 'provisioning' },
      clusters: { [failingSite]: 'Metal3Cluster: no BareMetalHost matches the host selector' },
    },
  });
}, 900_000);

afterAll(async () => {
  await standIn.stop();
  await failing.stop();
  if (standIn.problems.length > 0) console.log(`stand-in problems:\n${standIn.problems.join('\n')}`);
  kube.close();
  await store.close();
});

function environment(heartbeatDetails?: unknown) {
  const env = new MockActivityEnvironment(heartbeatDetails === undefined ? {} : { heartbeatDetails });
  const beats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => beats.push(d));
  return { env, beats };
}

const status = (o: KubeObject | undefined): Record<string, unknown> => (o?.status ?? {}) as Record<string, unknown>;
const ns = siteNamespace(site);
const names = clusterNames(site);

async function failure(promise: Promise<unknown>): Promise<ApplicationFailure> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ApplicationFailure);
    return err as ApplicationFailure;
  }
  throw new Error('expected an ApplicationFailure, but the activity succeeded');
}

describe('cluster activities against the lab API server, the stand-in playing Cluster-API and metal3', () => {
  it('installs, upgrades and removes a 3-host cluster', async () => {
    const p = plan(site);
    const started = Date.now();

    // Hosts: registered with their credentials, idempotently.
    await environment().env.run(activities.registerBareMetalHosts, p);
    const first = await kube.get({
      apiVersion: 'metal3.io/v1alpha1',
      kind: 'BareMetalHost',
      namespace: ns,
      name: 'host-1',
    });
    expect(first.spec).toMatchObject({
      online: true,
      bootMACAddress: p.spec.hosts[1]!.bootMacAddress,
      bmc: { address: 'ipmi://192.0.2.11', credentialsName: 'host-1-bmc-secret' },
      rootDeviceHints: { deviceName: '/dev/sda' },
      image: { checksum: 'b'.repeat(64), checksumType: 'sha256' },
    });
    expect(await kube.readSecret(ns, 'host-1-bmc-secret')).toEqual({ username: 'admin', password });
    await environment().env.run(activities.registerBareMetalHosts, p);
    const again = await kube.get({
      apiVersion: 'metal3.io/v1alpha1',
      kind: 'BareMetalHost',
      namespace: ns,
      name: 'host-1',
    });
    expect(again.metadata.generation).toBe(first.metadata.generation);

    const hosts = p.spec.hosts.map((h) => h.name);
    const wait = environment();
    await wait.env.run(activities.waitHostsProvisioned, { site, hosts });
    const last = wait.beats.at(-1) as HostsProgress;
    expect([...last.provisioned].sort()).toEqual(hosts);
    for (const h of hosts) {
      const bmh = await kube.get({ apiVersion: 'metal3.io/v1alpha1', kind: 'BareMetalHost', namespace: ns, name: h });
      expect((status(bmh).provisioning as { state: string }).state).toBe('provisioned');
      expect((await ironic.get(ironicNodeName(bmh))).provision_state).toBe('active');
    }
    // A retry resumes from its heartbeat: hosts already seen provisioned are not waited for again.
    const resumed = environment({ provisioned: hosts, states: {} });
    await resumed.env.run(activities.waitHostsProvisioned, { site, hosts });
    expect(resumed.beats.every((b) => (b as HostsProgress).provisioned.length === 3)).toBe(true);

    // Cluster: objects applied (twice: no change), then provisioned.
    await environment().env.run(activities.applyClusterObjects, p);
    const kcpRef = {
      apiVersion: 'controlplane.cluster.x-k8s.io/v1beta1',
      kind: 'KubeadmControlPlane',
      namespace: ns,
      name: names.controlPlane,
    };
    const mdRef = {
      apiVersion: 'cluster.x-k8s.io/v1beta1',
      kind: 'MachineDeployment',
      namespace: ns,
      name: names.workers,
    };
    const kcp = await kube.get(kcpRef);
    expect(kcp.spec).toMatchObject({ replicas: 1, version: 'v1.33.1' });
    expect((await kube.get(mdRef)).spec).toMatchObject({ replicas: 2, template: { spec: { version: 'v1.33.1' } } });
    await environment().env.run(activities.applyClusterObjects, p);
    // The stand-in writes status meanwhile, so the spec's generation is what must not move.
    expect((await kube.get(kcpRef)).metadata.generation).toBe(kcp.metadata.generation);

    const provisioning = environment();
    await provisioning.env.run(activities.waitClusterProvisioned, { site });
    expect(provisioning.beats).toContainEqual(expect.objectContaining({ step: 'workers' }));
    const cluster = await kube.get({
      apiVersion: 'cluster.x-k8s.io/v1beta1',
      kind: 'Cluster',
      namespace: ns,
      name: site,
    });
    expect(status(cluster)).toMatchObject({ phase: 'Provisioned', controlPlaneReady: true, infrastructureReady: true });
    expect(status(await kube.get(mdRef))).toMatchObject({ readyReplicas: 2, phase: 'Running' });

    // The kubeconfig goes into the inventory; only its secret's name comes back.
    const secretName = await environment().env.run<[SiteTarget], string, typeof activities.fetchClusterKubeconfig>(
      activities.fetchClusterKubeconfig,
      { site },
    );
    expect(secretName).toBe(`${site}-kubeconfig`);
    const stored = await store.secrets.reveal(secretName);
    expect(stored.type).toBe('kubeconfig');
    expect(stored.data.kubeconfig).toContain(lab.server);
    // Fetched again unchanged: not written again. A stale copy is replaced.
    const fetchKubeconfig = () =>
      environment().env.run<[SiteTarget], string, typeof activities.fetchClusterKubeconfig>(
        activities.fetchClusterKubeconfig,
        { site },
      );
    const version = (await store.secrets.get(secretName)).metadata.resourceVersion;
    await fetchKubeconfig();
    expect((await store.secrets.get(secretName)).metadata.resourceVersion).toBe(version);
    await store.secrets.put({ name: secretName }, 'kubeconfig', { kubeconfig: 'stale' });
    await fetchKubeconfig();
    expect((await store.secrets.reveal(secretName)).data.kubeconfig).toBe(stored.data.kubeconfig);
    console.log(`3-host Cluster-API install through the stand-in: ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // Upgrade: control plane first, then the workers.
    await environment().env.run(activities.upgradeKubernetes, {
      site,
      version: '1.34.2',
      part: 'control-plane' as const,
    });
    const cpWait = environment();
    await cpWait.env.run(activities.waitKubernetesVersion, { site, version: '1.34.2', part: 'control-plane' as const });
    expect(status(await kube.get(kcpRef))).toMatchObject({ version: 'v1.34.2', updatedReplicas: 1 });
    expect(cpWait.beats.length).toBeGreaterThan(0);
    await environment().env.run(activities.upgradeKubernetes, { site, version: '1.34.2', part: 'workers' as const });
    await environment().env.run(activities.waitKubernetesVersion, {
      site,
      version: '1.34.2',
      part: 'workers' as const,
    });
    const md = await kube.get(mdRef);
    expect(md.spec).toMatchObject({ template: { spec: { version: 'v1.34.2' } } });
    expect(status(md)).toMatchObject({
      updatedReplicas: 2,
      readyReplicas: 2,
      observedGeneration: md.metadata.generation,
    });

    // Compensations: cluster objects, then hosts (deprovisioned in Ironic, then gone).
    await environment().env.run(activities.deleteClusterObjects, p);
    for (const ref of [kcpRef, mdRef]) expect(await kube.find(ref)).toBeUndefined();
    expect(
      await kube.find({ apiVersion: 'cluster.x-k8s.io/v1beta1', kind: 'Cluster', namespace: ns, name: site }),
    ).toBeUndefined();
    await environment().env.run(activities.deleteBareMetalHosts, p);
    expect(await kube.list('metal3.io/v1alpha1', 'BareMetalHost', { namespace: ns })).toEqual([]);
    for (const h of hosts) expect(await ironic.find(`${ns}~${h}`)).toBeUndefined();
    // Running a compensation again is harmless.
    await environment().env.run(activities.deleteClusterObjects, p);
  }, 600_000);

  it('fails for good, with the controller message, when a host or the Cluster fails', async () => {
    const p = plan(failingSite);
    await environment().env.run(activities.registerBareMetalHosts, p);
    const hostFailure = await failure(
      environment().env.run(activities.waitHostsProvisioned, { site: failingSite, hosts: ['host-0', 'host-2'] }),
    );
    expect(hostFailure.nonRetryable).toBe(true);
    expect(hostFailure.type).toBe('HostProvisioningFailed');
    expect(hostFailure.message).toMatch(/host-2 \(provisioning\): provisioning error: .*failed while provisioning/);

    await environment().env.run(activities.applyClusterObjects, p);
    const clusterFailure = await failure(
      environment().env.run(activities.waitClusterProvisioned, { site: failingSite }),
    );
    expect(clusterFailure.nonRetryable).toBe(true);
    expect(clusterFailure.type).toBe('ClusterProvisioningFailed');
    expect(clusterFailure.message).toContain('Metal3Cluster: no BareMetalHost matches the host selector');

    // No password in any failure.
    expect(hostFailure.message).not.toContain(password);
    await environment().env.run(activities.deleteClusterObjects, p);
    await environment().env.run(activities.deleteBareMetalHosts, p);
  }, 300_000);

  it('refuses a bootstrap secret that is not a kubeconfig', async () => {
    const err = await failure(
      environment().env.run(activities.waitClusterProvisioned, { site, bootstrapKubeconfigRef: { name: 'bmc' } }),
    );
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toMatch(/not a kubeconfig secret/);
    expect(err.message).not.toContain(password);
  });
});
