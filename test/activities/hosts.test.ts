// Needs: real sshd hosts, a BPA in this process, the kubernetes lab peer (kwok), Ironic (fake-hardware), PGlite.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { labUp } from '../../deploy/dev/lab/index.ts';
import type { IronicLabInfo } from '../../deploy/dev/lab/ironic.ts';
import { fakeNode, type KubernetesLabInfo } from '../../deploy/dev/lab/kubernetes.ts';
import { bpaAccess, createBpmActivities, derivedJobId } from '../../src/activities/bpm.ts';
import { createHostActivities } from '../../src/activities/hosts.ts';
import { createInventoryActivities } from '../../src/activities/inventory.ts';
import { IronicClient } from '../../src/clients/ironic/index.ts';
import {
  deleteNode,
  findCondition,
  type KubeObject,
  KubernetesClient,
  type NodeObject,
  type ObjectRef,
  waitNodeReady,
} from '../../src/clients/kubernetes/index.ts';
import { type HostPatchInput, ironicNodeName, kubeconfigSecretName } from '../../src/domain/plan.ts';
import type { BinaryPackage } from '../../src/domain/software-profile.ts';
import { type LabPackage, onHost } from '../bpa/support.ts';
import { removeNode } from '../clients/ironic/lab.ts';
import { attempt, type BpmSite, type SiteHost, startBpmSite } from '../support/bpm-site.ts';
import { labPeer } from '../support/lab.ts';

/** Node names are cluster-wide and the lab API server is shared: every name carries this run's id. */
const run = Date.now().toString(36);
const site = `hp-${run}`;
const namespace = `hosts-test-${run}`;
const workflowId = `site-patch/${site}`;
const kubeconfigSecret = kubeconfigSecretName(site);

let lab: BpmSite;
let kube: KubernetesClient;
let ironic: IronicClient;
let ironicInfo: IronicLabInfo;
let hosts: ReturnType<typeof createHostActivities>;
let a: SiteHost;
let b: SiteHost;
let c: SiteHost;
/** kubelet 1.0.0 (every host has it) and 1.1.0 (the patch). */
let v1: LabPackage;
let v2: LabPackage;

const nodeRef = (name: string): ObjectRef => ({ apiVersion: 'v1', kind: 'Node', name });
const podRef = (name: string): ObjectRef => ({ apiVersion: 'v1', kind: 'Pod', namespace, name });

beforeAll(async () => {
  await labUp(['kubernetes', 'ironic']);
  const kubeLab = labPeer('kubernetes') as KubernetesLabInfo;
  ironicInfo = labPeer('ironic') as IronicLabInfo;
  kube = new KubernetesClient(kubeLab.kubeconfig);
  ironic = new IronicClient({ url: ironicInfo.url });
  lab = await startBpmSite({ prefix: 'hosts', site, hostNames: ['a', 'b', 'c'].map((x) => `hp-${run}-${x}`) });
  [a, b, c] = lab.hosts as [SiteHost, SiteHost, SiteHost];
  // The application cluster is the lab's API server; its kubeconfig is the site's, in the inventory.
  await lab.store.secrets.put({ name: kubeconfigSecret }, 'kubeconfig', {
    kubeconfig: readFileSync(kubeLab.kubeconfig, 'utf8'),
  });
  const inventory = createInventoryActivities({ store: lab.store });
  hosts = createHostActivities({
    kube: (path) => new KubernetesClient(path),
    ironic: (url) => new IronicClient({ url }),
    secrets: lab.store.secrets,
    sites: lab.store.sites,
    bpa: bpaAccess(lab.deps),
    recordHostState: (input) => inventory.recordHostState(input),
    readyTimeoutMs: 60_000,
    heartbeatIntervalMs: 100,
  });

  // Every host runs kubelet 1.0.0, installed through the BPM as a site install would.
  v1 = await lab.centralPackage('kubelet', 'kubelet', '1.0.0');
  v2 = await lab.centralPackage('kubelet', 'kubelet', '1.1.0', { rebootRequired: true });
  const bpm = createBpmActivities(lab.deps);
  const sha256s = [v1, v2].map((p) => p.pkg.artifact.sha256);
  const sent = await attempt(() => bpm.distributeArtifacts({ site, bpaUrl: lab.bpa.url, sha256s }));
  expect(sent.result).toEqual({ uploaded: 2 });
  const installed = await attempt(
    () => bpm.installPackages({ site, bpaUrl: lab.bpa.url, hosts: lab.hosts.map((h) => h.name), packages: [v1.pkg] }),
    { workflowId: `site-install/${site}`, activityId: '1' },
  );
  expect(installed.error).toBeUndefined();

  // Each host's Node (named after the host, as kubeadm names it), Ready through kwok.
  await kube.apply({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
  for (const h of lab.hosts) await kube.apply(fakeNode(h.name));
  for (const h of lab.hosts) await waitNodeReady(kube, h.name, { timeoutMs: 60_000 });
  // Hosts a and c have their Ironic node (fake-hardware, powered on); b's is enrolled by the resume test.
  for (const h of [a, c]) await enrolIronicNode(h);
}, 300_000);

afterAll(async () => {
  // Pods first: kwok finalizes a deleted pod only while its node exists.
  for (const pod of await kube.list('v1', 'Pod', { namespace })) {
    await kube.delete(podRef(pod.metadata.name), { waitMs: 10_000 });
  }
  for (const h of lab.hosts) await deleteNode(kube, h.name);
  for (const h of lab.hosts) await removeNode(ironic, ironicNodeName(site, h.name));
  kube.close();
  await lab.close();
});

async function enrolIronicNode(h: SiteHost): Promise<void> {
  const name = ironicNodeName(site, h.name);
  await removeNode(ironic, name);
  await ironic.enroll({
    name,
    driver: 'fake-hardware',
    interfaces: { deploy_interface: 'fake', inspect_interface: 'fake', boot_interface: 'fake' },
  });
  const wait = { timeoutMs: 60_000, intervalMs: 250 };
  await ironic.manage(name, { wait });
  await ironic.powerOn(name, { wait });
}

/** The reboots Ironic's conductor carried out on the host's node, as its log records them. */
async function reboots(h: SiteHost): Promise<number> {
  const { uuid } = await ironic.get(ironicNodeName(site, h.name));
  const line = `Successfully set node ${uuid} power state to power on by rebooting`;
  return readFileSync(ironicInfo.logFile, 'utf8')
    .split('\n')
    .filter((l) => l.includes(line)).length;
}

async function runningPod(name: string, nodeName: string): Promise<void> {
  await kube.apply({
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace },
    // No scheduler runs in the lab: the pod names its node, and kwok runs it there.
    spec: { nodeName, containers: [{ name: 'app', image: 'registry.invalid/app:1' }] },
  });
  await kube.waitFor(podRef(name), (o) => (o?.status as { phase?: string } | undefined)?.phase === 'Running', {
    timeoutMs: 30_000,
  });
}

const node = (h: SiteHost) => kube.get<NodeObject>(nodeRef(h.name));
const ready = (n: KubeObject) => findCondition(n, 'Ready')?.status;
const kubeletCalls = (h: SiteHost) => onHost(h.ssh.root, 'var/lib/fixture/kubelet/calls')?.split('\n') ?? [];
const jobCount = async () => (await lab.bpa.client.listJobs()).length;
const hostStatus = async (h: SiteHost) => (await lab.store.sites.get(site)).status?.hosts?.[h.name];
/** The id a host's install step records when it asks for the reboot (activity `patch-<host>` of `workflowId`). */
const rebootedBy = (host: 'a' | 'b') => derivedJobId(`${workflowId}-patch-${host}-install-reboot`);

function patch(h: SiteHost, action: 'install' | 'rollback', packages: BinaryPackage[], reboot: boolean) {
  const input: HostPatchInput = {
    site,
    host: h.name,
    action,
    packages,
    reboot,
    kubeconfigSecret,
    bpaUrl: lab.bpa.url,
    ironicUrl: ironicInfo.url,
    drainTimeoutSeconds: 60,
  };
  return () => hosts.patchHost(input);
}

/** Every heartbeat of a host's patch is progress it can resume from: the node and the steps done. */
function expectResumable(heartbeats: unknown[], nodeName: string): void {
  expect(heartbeats.length).toBeGreaterThan(0);
  for (const h of heartbeats) {
    expect(h).toEqual(expect.objectContaining({ node: nodeName, done: expect.any(Array) }));
    expect(h).not.toHaveProperty('jobId');
  }
}

describe('patchHost, drainHost and removeHostNode on a kubeadm site', () => {
  it('installs: cordon, drain, the BPA job, a reboot through Ironic, Ready, uncordon, verify, record', async () => {
    await runningPod('web-a', a.name);
    await runningPod('web-b', b.name);
    const rebootsBefore = await reboots(a);

    const run = await attempt(patch(a, 'install', [v2.pkg], true), { workflowId, activityId: 'patch-a' });
    expect(run.error).toBeUndefined();
    expect(run.result).toEqual({ host: a.name, node: a.name, packages: { kubelet: '1.1.0' }, rebooted: true });

    // The node is back in service; its pod was evicted, the other node's was not touched.
    const after = await node(a);
    expect(after.spec?.unschedulable).toBeUndefined();
    expect(ready(after)).toBe('True');
    expect(await kube.find(podRef('web-a'))).toBeUndefined();
    expect(await kube.find(podRef('web-b'))).toBeDefined();
    // The host runs the new version, installed by one BPA job for that host alone.
    expect(onHost(a.ssh.root, 'opt/kubelet/version')).toBe('1.1.0');
    expect(onHost(b.ssh.root, 'opt/kubelet/version')).toBe('1.0.0');
    const job = await lab.bpa.client.getJob(derivedJobId(`${workflowId}-patch-a-install`));
    expect(job).toMatchObject({ action: 'install', state: 'succeeded' });
    expect(job?.hosts.map((h) => h.host)).toEqual([a.name]);
    // Ironic rebooted the host's node once, and it is on again.
    expect(await reboots(a)).toBe(rebootsBefore + 1);
    const ironicNode = await ironic.get(ironicNodeName(site, a.name));
    expect(ironicNode.power_state).toBe('power on');
    expect(ironicNode.target_power_state).toBeNull();
    expect(ironicNode.last_error).toBeNull();
    // The inventory says what the host runs, and which step rebooted it.
    expect(await hostStatus(a)).toEqual({
      state: 'Ready',
      packages: { kubelet: '1.1.0' },
      rebootedBy: rebootedBy('a'),
    });

    expectResumable(run.heartbeats, a.name);
    const last = run.heartbeats.at(-1) as { done: string[] } | undefined;
    expect(last).toEqual({
      node: a.name,
      done: expect.any(Array) as unknown,
      packages: { kubelet: '1.1.0' },
      rebooted: true,
    });
    // In order, but for uncordon and verify: they run at once, and a step is noted as it ends.
    expect(last?.done.slice(0, 5)).toEqual(['cordon', 'drain', 'packages', 'reboot', 'ready']);
    expect(last?.done.slice(5, 7).sort()).toEqual(['uncordon', 'verify']);
    expect(last?.done[7]).toBe('record');

    // A retry that lost every heartbeat (the SDK sends them at most once a minute) does not reboot the host again:
    // the inventory, written right after the reboot was asked for, says this step did.
    const again = await attempt(patch(a, 'install', [v2.pkg], true), { workflowId, activityId: 'patch-a' });
    expect(again.error).toBeUndefined();
    expect(await reboots(a)).toBe(rebootsBefore + 1);
    expect(ready(await node(a))).toBe('True');
    expect((await node(a)).spec?.unschedulable).toBeUndefined();
  });

  it('a retried attempt resumes after the steps its heartbeat says were done: no second drain, job or install', async () => {
    const ids = { workflowId, activityId: 'patch-b' };
    // The first attempt gets as far as the reboot: b's node is not known to Ironic yet.
    const first = await attempt(patch(b, 'install', [v2.pkg], true), ids);
    expect(first.error).toBeInstanceOf(ApplicationFailure);
    expect((first.error as Error).message).toContain(ironicNodeName(site, b.name));
    expectResumable(first.heartbeats, b.name);
    const details = first.heartbeats.at(-1);
    expect(details).toEqual({ node: b.name, done: ['cordon', 'drain', 'packages'] });
    expect((await node(b)).spec?.unschedulable).toBe(true);
    expect(await kube.find(podRef('web-b'))).toBeUndefined();
    expect(onHost(b.ssh.root, 'opt/kubelet/version')).toBe('1.1.0');
    expect(kubeletCalls(b).filter((l) => l === 'install 1.1.0')).toHaveLength(1);

    // Meanwhile Ironic learns the node, and a pod is placed on the cordoned node by name.
    await enrolIronicNode(b);
    await runningPod('late-b', b.name);
    const jobs = await jobCount();
    const rebootsBefore = await reboots(b);

    const second = await attempt(patch(b, 'install', [v2.pkg], true), {
      ...ids,
      heartbeatDetails: structuredClone(details),
    });
    expect(second.error).toBeUndefined();
    expect(second.result).toEqual({ host: b.name, node: b.name, packages: { kubelet: '1.1.0' }, rebooted: true });
    // Its first heartbeat waits two keep-alives: by then it has gone on from the steps it resumed after.
    const firstBeat = second.heartbeats[0] as { node: string; done: string[] } | undefined;
    expect(firstBeat?.node).toBe(b.name);
    expect(firstBeat?.done.slice(0, 3)).toEqual(['cordon', 'drain', 'packages']);
    expectResumable(second.heartbeats, b.name);
    // No second job, no second install, no second drain (the pod placed since stays); the rest was done.
    expect(await jobCount()).toBe(jobs);
    expect(kubeletCalls(b).filter((l) => l === 'install 1.1.0')).toHaveLength(1);
    expect(await kube.find(podRef('late-b'))).toBeDefined();
    expect(await reboots(b)).toBe(rebootsBefore + 1);
    const after = await node(b);
    expect(after.spec?.unschedulable).toBeUndefined();
    expect(ready(after)).toBe('True');
    expect(await hostStatus(b)).toEqual({
      state: 'Ready',
      packages: { kubelet: '1.1.0' },
      rebootedBy: rebootedBy('b'),
    });
  });

  it('an attempt lost while its BPA job runs is resumed by the next one from its heartbeat, joining that job', async () => {
    const v3 = await lab.centralPackage('kubelet', 'kubelet', '1.2.0');
    const bpm = createBpmActivities(lab.deps);
    await attempt(() => bpm.distributeArtifacts({ site, bpaUrl: lab.bpa.url, sha256s: [v3.pkg.artifact.sha256] }));
    // The package takes 2 s on b: long enough to lose the attempt in the middle of its job.
    mkdirSync(join(b.ssh.root, 'etc/fixture-sleep'), { recursive: true });
    writeFileSync(join(b.ssh.root, 'etc/fixture-sleep/kubelet'), '2');
    const ids = { workflowId, activityId: 'patch-b-2' };
    const jobId = derivedJobId(`${workflowId}-patch-b-2-install`);
    const jobs = await jobCount();
    try {
      const jobRunning = (async () => {
        while ((await lab.bpa.client.getJob(jobId))?.hosts[0]?.state !== 'running') {
          await new Promise((r) => setTimeout(r, 50));
        }
      })();
      const lost = await attempt(patch(b, 'install', [v3.pkg], false), { ...ids, cancelWhen: jobRunning });
      expect(lost.error).toBeInstanceOf(CancelledFailure);
      expectResumable(lost.heartbeats, b.name);
      const details = lost.heartbeats.at(-1);
      expect(details).toEqual({ node: b.name, done: ['cordon', 'drain'] });
      // The job goes on without the attempt that started it, and ends before the next attempt comes.
      expect((await lab.bpa.client.getJob(jobId))?.state).toBe('running');
      expect((await lab.bpa.bpa.engine.waitFor(jobId)).state).toBe('succeeded');

      const resumed = await attempt(patch(b, 'install', [v3.pkg], false), {
        ...ids,
        heartbeatDetails: structuredClone(details),
      });
      expect(resumed.error).toBeUndefined();
      expect(resumed.result).toEqual({ host: b.name, node: b.name, packages: { kubelet: '1.2.0' }, rebooted: false });
      expectResumable(resumed.heartbeats, b.name);
    } finally {
      rmSync(join(b.ssh.root, 'etc/fixture-sleep/kubelet'), { force: true });
    }
    // One job for both attempts, one install on the host, and the host back in service.
    expect(await jobCount()).toBe(jobs + 1);
    expect(kubeletCalls(b).filter((l) => l === 'install 1.2.0')).toHaveLength(1);
    expect(onHost(b.ssh.root, 'opt/kubelet/version')).toBe('1.2.0');
    expect((await node(b)).spec?.unschedulable).toBeUndefined();
    expect(await hostStatus(b)).toEqual({
      state: 'Ready',
      packages: { kubelet: '1.2.0' },
      rebootedBy: rebootedBy('b'),
    });
  });

  it('rolls a host back to its old version; a host not at the version given up is left alone', async () => {
    const rebootsBefore = await reboots(a);
    const back = await attempt(patch(a, 'rollback', [v2.pkg], false), { workflowId, activityId: 'back-a' });
    expect(back.error).toBeUndefined();
    expect(back.result).toEqual({ host: a.name, node: a.name, packages: { kubelet: '1.0.0' }, rebooted: false });
    expect(onHost(a.ssh.root, 'opt/kubelet/version')).toBe('1.0.0');
    expect(kubeletCalls(a).slice(-2)).toEqual(['install 1.0.0', 'verify 1.0.0']);
    const job = await lab.bpa.client.getJob(derivedJobId(`${workflowId}-back-a-rollback`));
    expect(job).toMatchObject({ action: 'rollback', state: 'succeeded' });
    expect((await node(a)).spec?.unschedulable).toBeUndefined();
    expect(await reboots(a)).toBe(rebootsBefore);
    expect(await hostStatus(a)).toEqual({
      state: 'Ready',
      packages: { kubelet: '1.0.0' },
      rebootedBy: rebootedBy('a'),
    });

    // c never got 1.1.0: its node is not cordoned (watched throughout), its pod stays, the BPA runs nothing.
    await runningPod('web-c', c.name);
    const jobs = await jobCount();
    const calls = kubeletCalls(c);
    const seen: (boolean | undefined)[] = [];
    const stop = new AbortController();
    const watching = kube
      .waitFor<NodeObject>(
        nodeRef(c.name),
        (n) => {
          seen.push(n?.spec?.unschedulable);
          return n?.spec?.unschedulable === true;
        },
        { timeoutMs: 60_000, signal: stop.signal },
      )
      .then(
        () => 'cordoned',
        () => 'never cordoned',
      );
    while (seen.length === 0) await new Promise((r) => setTimeout(r, 20));

    const skipped = await attempt(patch(c, 'rollback', [v2.pkg], true), { workflowId, activityId: 'back-c' });
    await new Promise((r) => setTimeout(r, 500));
    stop.abort();
    expect(await watching).toBe('never cordoned');
    expect(seen.every((u) => u === undefined)).toBe(true);
    expect(skipped.error).toBeUndefined();
    expect(skipped.result).toEqual({ host: c.name, node: c.name, packages: { kubelet: '1.0.0' }, rebooted: false });
    expect(await jobCount()).toBe(jobs);
    expect(await lab.bpa.client.getJob(derivedJobId(`${workflowId}-back-c-rollback`))).toBeUndefined();
    expect(kubeletCalls(c)).toEqual(calls);
    expect(await kube.find(podRef('web-c'))).toBeDefined();
    expect(await hostStatus(c)).toBeUndefined();
  });

  it('drainHost empties the node, removeHostNode deletes it; both are no-ops once it is gone', async () => {
    const target = { site, host: c.name, kubeconfigSecret };
    const drained = await attempt(() => hosts.drainHost({ ...target, drainTimeoutSeconds: 60 }));
    expect(drained.error).toBeUndefined();
    expect((await node(c)).spec?.unschedulable).toBe(true);
    expect(await kube.find(podRef('web-c'))).toBeUndefined();

    const removed = await attempt(() => hosts.removeHostNode(target));
    expect(removed.error).toBeUndefined();
    expect(await kube.find(nodeRef(c.name))).toBeUndefined();
    // The other hosts' nodes are still there.
    for (const h of [a, b]) expect(ready(await node(h))).toBe('True');

    const again = await Promise.all([
      attempt(() => hosts.drainHost(target)),
      attempt(() => hosts.removeHostNode(target)),
    ]);
    expect(again.map((r) => r.error)).toEqual([undefined, undefined]);
  });

  // Every patchHost hands the site's SSH key to the BPA again; an unchanged key must not close the connections the
  // other hosts' running jobs use (it did: "the SSH client is closed").
  it("patching two hosts at once: the second does not break the first one's running job", async () => {
    mkdirSync(join(a.ssh.root, 'etc/fixture-sleep'), { recursive: true });
    writeFileSync(join(a.ssh.root, 'etc/fixture-sleep/kubelet'), '2');
    try {
      const jobOfA = derivedJobId(`${workflowId}-both-a-install`);
      const first = attempt(patch(a, 'install', [v2.pkg], false), { workflowId, activityId: 'both-a' });
      while ((await lab.bpa.client.getJob(jobOfA))?.hosts[0]?.state !== 'running') {
        await new Promise((r) => setTimeout(r, 50));
      }
      const second = attempt(patch(b, 'install', [v2.pkg], false), { workflowId, activityId: 'both-b' });
      const [ofA, ofB] = await Promise.all([first, second]);
      expect(ofB.error).toBeUndefined();
      expect(ofA.error).toBeUndefined();
      expect(onHost(a.ssh.root, 'opt/kubelet/version')).toBe('1.1.0');
    } finally {
      rmSync(join(a.ssh.root, 'etc/fixture-sleep/kubelet'), { force: true });
    }
  });
});
