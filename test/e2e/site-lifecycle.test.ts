// Needs: the real Temporal dev server, Ironic (fake-hardware), the kubernetes lab peer (kube-apiserver + kwok, with
// the test-only Cluster-API/metal3 stand-in), sshd hosts of its own with a BPA, PostgreSQL, helm (tools cache).
// Everything goes through icnctl and the API; the worker is a separate process, as in production.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { HelmClient } from '../../src/clients/helm/index.ts';
import { IronicClient } from '../../src/clients/ironic/index.ts';
import { KubernetesClient, type KubeObject } from '../../src/clients/kubernetes/index.ts';
import { onHost } from '../bpa/support.ts';
import { activityTimes, applyLabSite, type LabArtifacts, type LabSite, startLabSite } from './lab-site.ts';

let lab: LabSite;
let artifacts: LabArtifacts;
let kube: KubernetesClient;

beforeAll(async () => {
  // A fourth simulated host joins the site later (reconcile).
  lab = await startLabSite('e2e', { sshHosts: 4 });
  artifacts = await applyLabSite(lab);
  await lab.startWorker();
  kube = new KubernetesClient(lab.kube.kubeconfig);
}, 600_000);

afterAll(async () => {
  kube.close();
  await lab.stop();
}, 120_000);

const hostRoots = () => lab.hosts.hosts.slice(0, 3).map((h) => h.root);
const namespace = () => `site-${lab.site}`;

async function siteNodes(): Promise<KubeObject[]> {
  const nodes = await kube.list('v1', 'Node', { labelSelector: `cluster.x-k8s.io/cluster-name=${lab.site}` });
  return nodes.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
}

async function release() {
  const helm = new HelmClient({ helmBinary: lab.helmBinary, kubeconfigPath: lab.kube.kubeconfig });
  try {
    return await helm.status('icn-test-app', lab.chartNamespace);
  } finally {
    helm.close();
  }
}

async function siteStatus(): Promise<Record<string, unknown>> {
  const r = await lab.icnctl('get', 'site', lab.site, '-o', 'json');
  expect({ code: r.code, stderr: r.stderr }).toMatchObject({ code: 0 });
  return (JSON.parse(r.stdout) as { status: Record<string, unknown> }).status;
}

describe('a 3-host site through icnctl: install, patch, upgrade, a host added and removed', () => {
  it('installs: Ironic nodes active, cluster objects, packages on the hosts, the chart deployed', async () => {
    const started = Date.now();
    const r = await lab.icnctl('install', lab.site);
    const wallSeconds = (Date.now() - started) / 1000;
    if (r.code !== 0) console.log(`icnctl:\n${r.stdout}\n${r.stderr}\nworker:\n${lab.workerLog()}`);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('siteInstall completed');

    const ironic = new IronicClient({ url: lab.ironic.url });
    for (const host of ['host-1', 'host-2', 'host-3']) {
      expect((await ironic.get(`${namespace()}~${host}`)).provision_state).toBe('active');
    }
    for (const [kind, apiVersion, name] of [
      ['Cluster', 'cluster.x-k8s.io/v1beta1', lab.site],
      ['KubeadmControlPlane', 'controlplane.cluster.x-k8s.io/v1beta1', `${lab.site}-control-plane`],
      ['MachineDeployment', 'cluster.x-k8s.io/v1beta1', `${lab.site}-workers`],
    ] as const) {
      expect(await kube.find({ apiVersion, kind, name, namespace: namespace() })).toBeDefined();
    }
    expect((await siteNodes()).map((n) => n.metadata.name)).toEqual(
      ['host-1', 'host-2', 'host-3'].map((h) => `${lab.site}-${h}`),
    );
    for (const root of hostRoots()) {
      expect(onHost(root, 'opt/kubelet/version')).toBe('1.34.2');
      expect(onHost(root, 'opt/containerd/version')).toBe('1.7.0');
      expect(onHost(root, 'var/lib/fixture/kubelet/install.count')).toBe('1');
    }
    expect(await release()).toMatchObject({ revision: 1, status: 'deployed', chartVersion: '0.1.0' });
    expect(await siteStatus()).toMatchObject({
      phase: 'Ready',
      installedProfile: { name: `${lab.site}-profile`, version: '1.0.0' },
    });

    const spent = await activityTimes(lab, `site/${lab.site}/install`);
    console.log(`3-host install in the lab: ${wallSeconds.toFixed(1)} s through icnctl; activities: ${spent}`);
  }, 600_000);

  it('patches to 1.1.0: only kubelet and the chart change, host by host in rolling order', async () => {
    const r = await lab.icnctl('patch', lab.site, '--profile', `${lab.site}-profile@1.1.0`);
    expect({ code: r.code, stderr: r.stderr, worker: r.code === 0 ? '' : lab.workerLog() }).toMatchObject({ code: 0 });

    for (const root of hostRoots()) {
      expect(onHost(root, 'opt/kubelet/version')).toBe('1.34.3');
      expect(onHost(root, 'var/lib/fixture/kubelet/install.count')).toBe('2');
      // Unchanged: not installed again.
      expect(onHost(root, 'var/lib/fixture/containerd/install.count')).toBe('1');
    }
    // Rolling: each host's kubelet 1.34.3 was installed after the previous host's.
    const installedAt = await Promise.all(
      ['host-1', 'host-2', 'host-3'].map(async (host) => {
        const records = await lab.bpa.client.installed(host);
        return records.find((p) => p.name === 'kubelet' && p.version === '1.34.3')?.at ?? '';
      }),
    );
    expect(installedAt.every((at) => at !== '')).toBe(true);
    expect([...installedAt].sort()).toEqual(installedAt);
    for (const node of await siteNodes()) {
      expect((node.spec as { unschedulable?: boolean }).unschedulable).toBeUndefined();
    }
    expect(await release()).toMatchObject({ revision: 2, status: 'deployed', chartVersion: '0.2.0' });
    expect(await siteStatus()).toMatchObject({ phase: 'Ready', installedProfile: { version: '1.1.0' } });
  }, 600_000);

  it('upgrades Kubernetes to v1.35.0: control plane, then workers; the objects and nodes show it', async () => {
    const r = await lab.icnctl('upgrade', lab.site, '--kubernetes-version', 'v1.35.0');
    expect({ code: r.code, stderr: r.stderr, worker: r.code === 0 ? '' : lab.workerLog() }).toMatchObject({ code: 0 });
    const kcp = await kube.get({
      apiVersion: 'controlplane.cluster.x-k8s.io/v1beta1',
      kind: 'KubeadmControlPlane',
      name: `${lab.site}-control-plane`,
      namespace: namespace(),
    });
    expect(kcp.spec).toMatchObject({ version: 'v1.35.0' });
    const md = await kube.get({
      apiVersion: 'cluster.x-k8s.io/v1beta1',
      kind: 'MachineDeployment',
      name: `${lab.site}-workers`,
      namespace: namespace(),
    });
    expect(md.spec).toMatchObject({ template: { spec: { version: 'v1.35.0' } } });
    for (const node of await siteNodes()) {
      expect((node.status as { nodeInfo?: { kubeletVersion?: string } }).nodeInfo?.kubeletVersion).toBe('v1.35.0');
    }
    expect(await siteStatus()).toMatchObject({ phase: 'Ready', kubernetesVersion: 'v1.35.0' });
  }, 600_000);

  async function applyHosts(count: number): Promise<void> {
    const applied = await lab.icnctl('apply', '-f', lab.manifests(artifacts, { hostCount: count }));
    expect({ code: applied.code, stderr: applied.stderr }).toMatchObject({ code: 0 });
    // Changing the hosts of an installed site is all the operator does: the API starts the reconcile.
    expect(applied.stdout).toContain(`site/${lab.site}/reconcile started`);
    const followed = await lab.icnctl('status', lab.site, 'reconcile');
    if (followed.code !== 0) console.log(`${followed.stdout}\n${followed.stderr}\n${lab.workerLog()}`);
    expect(followed.code).toBe(0);
  }

  const workers = async () =>
    (
      await kube.get({
        apiVersion: 'cluster.x-k8s.io/v1beta1',
        kind: 'MachineDeployment',
        name: `${lab.site}-workers`,
        namespace: namespace(),
      })
    ).spec as { replicas: number };

  it('adds a fourth host when the site is applied with it: provisioned, joined, given the packages; others untouched', async () => {
    await applyHosts(4);
    const ironic = new IronicClient({ url: lab.ironic.url });
    expect((await ironic.get(`${namespace()}~host-4`)).provision_state).toBe('active');
    expect((await siteNodes()).map((n) => n.metadata.name)).toContain(`${lab.site}-host-4`);
    expect((await workers()).replicas).toBe(3);
    const fourth = lab.hosts.hosts[3]?.root ?? '';
    // The profile the site runs now (1.1.0), once.
    expect(onHost(fourth, 'opt/kubelet/version')).toBe('1.34.3');
    expect(onHost(fourth, 'var/lib/fixture/kubelet/install.count')).toBe('1');
    for (const root of hostRoots()) expect(onHost(root, 'var/lib/fixture/kubelet/install.count')).toBe('2');
    expect(await siteStatus()).toMatchObject({ phase: 'Ready', hosts: { 'host-4': { state: 'Ready' } } });
  }, 600_000);

  it('removes it when the site is applied without it: drained, out of the cluster, deprovisioned, forgotten', async () => {
    await applyHosts(3);
    expect((await siteNodes()).map((n) => n.metadata.name)).not.toContain(`${lab.site}-host-4`);
    expect((await workers()).replicas).toBe(2);
    expect(
      await kube.find({
        apiVersion: 'metal3.io/v1alpha1',
        kind: 'BareMetalHost',
        name: 'host-4',
        namespace: namespace(),
      }),
    ).toBeUndefined();
    const ironic = new IronicClient({ url: lab.ironic.url });
    const node = await ironic.get(`${namespace()}~host-4`).catch(() => undefined);
    expect(node?.provision_state ?? 'gone').not.toBe('active');
    const status = (await siteStatus()) as { hosts?: Record<string, unknown> };
    expect(Object.keys(status.hosts ?? {}).sort()).toEqual(['host-1', 'host-2', 'host-3']);
  }, 600_000);
});
