// Needs: real sshd hosts (16 of their own, from the ssh-hosts lab peer's startSshHosts: each test has its own), the
// BPA in this process and, for the restart, as a child process; kubeadm, kubelet and containerd are the lab's
// recording scripts (test/fixtures/packages).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { freePort, sleep } from '../../deploy/dev/lab/processes.ts';
import { type SshHost, type SshHostsInfo, startSshHosts, stopSshHosts } from '../../deploy/dev/lab/ssh-hosts.ts';
import type { BpaClient } from '../../src/clients/bpa/index.ts';
import { type ClusterHost, ClusterSpec, type InstallJob } from '../../src/domain/bpa.ts';
import {
  clusterHost,
  keyRef,
  kubeadmCalls,
  kubeadmTimeline,
  type LabPackage,
  labPackage,
  onHost,
  spawnBpa,
  startBpa,
  type TestBpa,
  uploadPackage,
} from './support.ts';

let dir: string;
let info: SshHostsInfo;
let bpa: TestBpa;
let v134: LabPackage[];
let v135: LabPackage[];
const children: ChildProcess[] = [];

/** The hosts of one test: `from` to `from + count - 1`. */
function hosts(from: number, count: number): SshHost[] {
  return info.hosts.slice(from, from + count);
}

function spec(name: string, members: ClusterHost[]): ClusterSpec {
  return {
    name,
    kubernetesVersion: 'v1.34.2',
    controlPlaneEndpoint: { host: '10.10.0.10' },
    hosts: members,
    packages: v134.map((p) => p.pkg),
  };
}

/** Followed on the job's event stream, which ends with the job. */
async function jobEnd(client: BpaClient, id: string): Promise<InstallJob> {
  for await (const event of client.events(id)) if (event.type === 'done') break;
  const job = await client.getJob(id);
  if (!job) throw new Error(`job ${id} vanished`);
  return job;
}

async function bringUp(client: BpaClient, s: ClusterSpec): Promise<void> {
  const started = await client.startCluster(s);
  expect(await jobEnd(client, started.jobId)).toMatchObject({ state: 'succeeded' });
}

/** What a host has been asked to do so far: the kubeadm calls and the package installs. */
function trace(h: SshHost) {
  return {
    kubeadm: kubeadmCalls(h),
    kubeadmInstalls: onHost(h.root, 'var/lib/fixture/kubeadm/install.count'),
    kubelet: onHost(h.root, 'var/lib/fixture/kubelet/calls'),
  };
}

const joinPrefix = `kubeadm join 10.10.0.10:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:${'0'.repeat(64)}`;
const certificateKey = '0123456789abcdef'.repeat(4);

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'icn-bpa-cluster-'));
  info = await startSshHosts({ count: 16, dir: join(dir, 'lab') });
  bpa = await startBpa(join(dir, 'bpa'), info);
  const pkgs = join(dir, 'pkgs');
  v134 = [
    labPackage(pkgs, 'containerd', 'containerd', '1.7.24'),
    labPackage(pkgs, 'kubelet', 'kubelet', '1.34.2'),
    labPackage(pkgs, 'kubeadm', 'kubeadm', '1.34.2'),
  ];
  v135 = [labPackage(pkgs, 'kubelet', 'kubelet', '1.35.0'), labPackage(pkgs, 'kubeadm', 'kubeadm', '1.35.0')];
  for (const p of [...v134, ...v135]) await uploadPackage(bpa.client, p);
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await bpa.close();
  await stopSshHosts(join(dir, 'lab'));
  rmSync(dir, { recursive: true, force: true });
});

describe('BPA kubeadm clusters', () => {
  it('brings a cluster up: packages, init then the joins in order, and the kubeconfig', async () => {
    const [h1, h2, h3] = hosts(0, 3) as [SshHost, SshHost, SshHost];
    // Listed worker first: the BPA still joins the control plane before it.
    const s = spec('edge-1', [
      clusterHost(h1, 'control-plane'),
      clusterHost(h3, 'worker'),
      clusterHost(h2, 'control-plane'),
    ]);
    const started = await bpa.client.startCluster(s);
    expect(started).toMatchObject({ name: 'edge-1', jobId: 'cluster-edge-1', operation: 'bring-up' });
    const job = await bpa.bpa.engine.waitFor('cluster-edge-1');
    expect(job.state).toBe('succeeded');
    const status = await bpa.client.getCluster('edge-1');
    expect(status).toMatchObject({
      state: 'succeeded',
      kubeconfigReady: true,
      kubernetesVersion: 'v1.34.2',
      steps: ['packages', `init ${h1.name}`, `join ${h2.name}`, `join ${h3.name}`, 'kubeconfig'],
      hosts: [
        { name: h1.name, role: 'control-plane' },
        { name: h2.name, role: 'control-plane' },
        { name: h3.name, role: 'worker' },
      ],
    });

    for (const h of [h1, h2, h3]) {
      for (const p of ['containerd', 'kubelet'])
        expect(onHost(h.root, 'opt', p, 'version')).toBe(p === 'kubelet' ? '1.34.2' : '1.7.24');
      expect(onHost(h.root, 'var/lib/fixture/kubeadm/install.count')).toBe('1');
    }
    expect(kubeadmCalls(h1)[0]).toBe(
      `kubeadm init --kubernetes-version=v1.34.2 --control-plane-endpoint=10.10.0.10:6443 --pod-network-cidr=10.244.0.0/16 --service-cidr=10.96.0.0/12 --node-name=${h1.name}`,
    );
    expect(kubeadmCalls(h1)).toContain('kubeadm init phase upload-certs --upload-certs');
    expect(kubeadmCalls(h2)).toEqual([
      `${joinPrefix} --node-name=${h2.name} --control-plane --certificate-key=${certificateKey}`,
    ]);
    expect(kubeadmCalls(h3)).toEqual([`${joinPrefix} --node-name=${h3.name}`]);

    const kubeconfig = await bpa.client.kubeconfig('edge-1');
    expect(kubeconfig).toBe(readFileSync(join(h1.root, 'etc/kubernetes/admin.conf'), 'utf8'));
    expect(parse(kubeconfig!)).toMatchObject({ clusters: [{ cluster: { server: 'https://10.10.0.10:6443' } }] });

    // Asked again, it is the same bring-up: nothing runs twice.
    const again = await bpa.client.startCluster(s);
    expect(again).toMatchObject({ jobId: 'cluster-edge-1', state: 'succeeded' });
    expect(kubeadmCalls(h1).filter((c) => c.startsWith('kubeadm init --'))).toHaveLength(1);
    expect(await bpa.client.kubeconfig('no-such-cluster')).toBeUndefined();
  });

  it('reconciles membership: hosts added join, hosts removed are reset, the others are left alone', async () => {
    const [cp1, w1, w2, cp2] = hosts(3, 4) as [SshHost, SshHost, SshHost, SshHost];
    const base = spec('grow', [clusterHost(cp1, 'control-plane'), clusterHost(w1, 'worker')]);
    await bringUp(bpa.client, base);
    const before = { cp1: trace(cp1), w1: trace(w1) };

    const grown = { ...base, hosts: [...base.hosts, clusterHost(w2, 'worker'), clusterHost(cp2, 'control-plane')] };
    const started = await bpa.client.startCluster(grown);
    expect(started).toMatchObject({ jobId: 'cluster-grow.reconcile-1', operation: 'reconcile' });
    expect(['pending', 'running']).toContain(started.state);
    // While it runs: the same spec is the same job; any other change waits its turn.
    expect((await bpa.client.startCluster(grown)).jobId).toBe(started.jobId);
    await expect(bpa.client.startCluster(base)).rejects.toMatchObject({ reason: 'Conflict' });
    await expect(bpa.client.upgradeCluster('grow', { kubernetesVersion: 'v1.35.0' })).rejects.toMatchObject({
      reason: 'Conflict',
    });
    await expect(bpa.client.resetCluster('grow')).rejects.toMatchObject({ reason: 'Conflict' });

    expect(await jobEnd(bpa.client, started.jobId)).toMatchObject({
      state: 'succeeded',
      summary: { succeeded: 2, failed: 0 },
    });
    const grownStatus = await bpa.client.getCluster('grow');
    expect(grownStatus).toMatchObject({
      state: 'succeeded',
      steps: ['packages', `join ${cp2.name}`, `join ${w2.name}`],
      hosts: [cp1, w1, cp2, w2].map((h) => ({ name: h.name })),
    });
    // Only the hosts added got packages and joins; the worker kept saw nothing, and the control plane kept only
    // issued the join tokens and the certificate key.
    expect(kubeadmCalls(cp2)).toEqual([
      `${joinPrefix} --node-name=${cp2.name} --control-plane --certificate-key=${certificateKey}`,
    ]);
    expect(kubeadmCalls(w2)).toEqual([`${joinPrefix} --node-name=${w2.name}`]);
    for (const h of [cp2, w2]) {
      expect(trace(h).kubeadmInstalls).toBe('1');
      expect(trace(h).kubelet).toContain('install 1.34.2');
    }
    expect(trace(w1)).toEqual(before.w1);
    expect(trace(cp1)).toEqual({
      ...before.cp1,
      kubeadm: [
        ...before.cp1.kubeadm,
        'kubeadm token create --print-join-command',
        'kubeadm init phase upload-certs --upload-certs',
        'kubeadm token create --print-join-command',
      ],
    });

    // The same hosts again, in another order: nothing to do.
    const traces = [cp1, w1, w2, cp2].map(trace);
    const same = await bpa.client.startCluster({ ...grown, hosts: [...grown.hosts].reverse() });
    expect(same).toMatchObject({ jobId: started.jobId, state: 'succeeded' });
    expect([cp1, w1, w2, cp2].map(trace)).toEqual(traces);

    // What only a new cluster or an upgrade can change is refused.
    await expect(bpa.client.startCluster({ ...grown, kubernetesVersion: 'v1.35.0' })).rejects.toMatchObject({
      reason: 'Conflict',
    });
    await expect(bpa.client.startCluster({ ...grown, podCidr: '10.250.0.0/16' })).rejects.toMatchObject({
      reason: 'Conflict',
    });
    await expect(
      bpa.client.startCluster({
        ...base,
        hosts: [clusterHost(cp1, 'control-plane'), clusterHost(w1, 'control-plane')],
      }),
    ).rejects.toMatchObject({ reason: 'Conflict' });

    // A worker removed: reset on it alone, then forgotten.
    const shrunk = { ...grown, hosts: grown.hosts.filter((h) => h.name !== w2.name) };
    const removal = await bpa.client.startCluster(shrunk);
    expect(removal).toMatchObject({ jobId: 'cluster-grow.reconcile-2', operation: 'reconcile' });
    expect(await jobEnd(bpa.client, removal.jobId)).toMatchObject({ state: 'succeeded', hosts: [] });
    expect(await bpa.client.getCluster('grow')).toMatchObject({
      state: 'succeeded',
      steps: [`reset ${w2.name}`],
      hosts: [cp1, w1, cp2].map((h) => ({ name: h.name })),
    });
    expect(kubeadmCalls(w2)).toEqual([...traces[2]!.kubeadm, 'kubeadm reset -f']);
    expect(existsSync(join(w2.root, 'etc/kubernetes'))).toBe(false);
    expect([cp1, w1, cp2].map(trace)).toEqual([traces[0], traces[1], traces[3]]);
  });

  it('upgrades: packages everywhere, apply on the first control plane, then upgrade node one by one', async () => {
    const [cp1, cp2, w1] = hosts(7, 3) as [SshHost, SshHost, SshHost];
    const s = spec('up', [
      clusterHost(cp1, 'control-plane'),
      clusterHost(w1, 'worker'),
      clusterHost(cp2, 'control-plane'),
    ]);
    await bringUp(bpa.client, s);

    const upgrade = { kubernetesVersion: 'v1.35.0', packages: v135.map((p) => p.pkg) };
    const started = await bpa.client.upgradeCluster('up', upgrade);
    expect(started).toMatchObject({
      jobId: 'cluster-up.upgrade-1',
      operation: 'upgrade',
      kubernetesVersion: 'v1.34.2',
    });
    expect((await bpa.client.upgradeCluster('up', upgrade)).jobId).toBe(started.jobId);
    await expect(bpa.client.upgradeCluster('up', { kubernetesVersion: 'v1.36.0' })).rejects.toMatchObject({
      reason: 'Conflict',
    });
    expect(await jobEnd(bpa.client, started.jobId)).toMatchObject({
      state: 'succeeded',
      summary: { succeeded: 3, failed: 0 },
    });
    expect(await bpa.client.getCluster('up')).toMatchObject({
      state: 'succeeded',
      kubernetesVersion: 'v1.35.0',
      steps: [
        'packages',
        `upgrade apply ${cp1.name}`,
        `upgrade node ${cp2.name}`,
        `upgrade node ${w1.name}`,
        'kubernetes-version v1.35.0',
      ],
    });

    const upgrades = kubeadmTimeline([cp1, cp2, w1]).filter((c) => c.includes(' kubeadm upgrade '));
    expect(upgrades).toEqual([
      `${cp1.name} kubeadm upgrade apply v1.35.0 -y`,
      `${cp2.name} kubeadm upgrade node`,
      `${w1.name} kubeadm upgrade node`,
    ]);
    const applyAt = Number(
      (onHost(cp1.root, 'var/lib/fixture/kubeadm/calls.at') ?? '')
        .split('\n')
        .find((l) => l.includes('upgrade apply'))
        ?.split(' ')[0],
    );
    for (const h of [cp1, cp2, w1]) {
      expect(onHost(h.root, 'var/lib/fixture/kubeadm/kubernetes-version')).toBe('1.35.0');
      expect(onHost(h.root, 'opt/kubelet/version')).toBe('1.35.0');
      // The new kubeadm was on every host before the first upgrade command.
      expect(statSync(join(h.root, 'var/lib/fixture/kubeadm/version')).mtimeMs * 1e6).toBeLessThan(applyAt);
    }

    // The same version again (with or without its "v") is a no-op; going back is refused.
    const calls = [cp1, cp2, w1].map(kubeadmCalls);
    expect(await bpa.client.upgradeCluster('up', { kubernetesVersion: '1.35.0' })).toMatchObject({
      jobId: started.jobId,
      kubernetesVersion: 'v1.35.0',
    });
    await expect(bpa.client.upgradeCluster('up', { kubernetesVersion: 'v1.34.2' })).rejects.toMatchObject({
      reason: 'Conflict',
    });
    await expect(bpa.client.upgradeCluster('nope', { kubernetesVersion: 'v1.35.0' })).rejects.toMatchObject({
      reason: 'NotFound',
    });
    expect([cp1, cp2, w1].map(kubeadmCalls)).toEqual(calls);

    // A host that fails its upgrade fails the job (not retried: kubeadm said no) and the cluster keeps its version;
    // the upgrade asked again goes on from that host, the hosts done before it untouched.
    mkdirSync(join(w1.root, 'etc/fixture-fail'), { recursive: true });
    writeFileSync(join(w1.root, 'etc/fixture-fail/kubeadm'), 'upgrade node');
    const failing = await bpa.client.upgradeCluster('up', { kubernetesVersion: 'v1.35.1' });
    const failed = await jobEnd(bpa.client, failing.jobId);
    expect(failed.state).toBe('failed');
    expect(failed.error).toMatch(new RegExp(`^host ${w1.name}: kubeadm upgrade node exited 1: .*refused on purpose`));
    expect(await bpa.client.getCluster('up')).toMatchObject({ state: 'failed', kubernetesVersion: 'v1.35.0' });
    expect(kubeadmCalls(w1).filter((c) => c === 'kubeadm upgrade node')).toHaveLength(2);
    rmSync(join(w1.root, 'etc/fixture-fail'), { recursive: true });
    const before = [cp1, cp2].map(kubeadmCalls);
    const retried = await bpa.client.upgradeCluster('up', { kubernetesVersion: 'v1.35.1' });
    expect(retried.jobId).toBe('cluster-up.upgrade-3');
    expect(await jobEnd(bpa.client, retried.jobId)).toMatchObject({ state: 'succeeded' });
    expect([cp1, cp2].map(kubeadmCalls)).toEqual(before);
    expect(kubeadmCalls(w1).filter((c) => c === 'kubeadm upgrade node')).toHaveLength(3);
    expect(await bpa.client.getCluster('up')).toMatchObject({ state: 'succeeded', kubernetesVersion: 'v1.35.1' });
  });

  it('resets a cluster: every host, workers first, then the cluster is forgotten', async () => {
    const [cp1, cp2, w1] = hosts(10, 3) as [SshHost, SshHost, SshHost];
    const s = spec('gone', [
      clusterHost(cp1, 'control-plane'),
      clusterHost(cp2, 'control-plane'),
      clusterHost(w1, 'worker'),
    ]);
    await bringUp(bpa.client, s);
    expect(await bpa.client.kubeconfig('gone')).toBeDefined();

    // The worker's reset, the first, takes a while: long enough to be asked again meanwhile.
    mkdirSync(join(w1.root, 'etc/fixture-sleep'), { recursive: true });
    writeFileSync(join(w1.root, 'etc/fixture-sleep/kubeadm'), '0.3');
    expect(await bpa.client.resetCluster('gone')).toBe(true);
    const jobId = 'cluster-gone.reset-1';
    // While it runs: asked again, it is the same reset; anything else waits.
    expect(await bpa.client.resetCluster('gone')).toBe(true);
    await expect(bpa.client.startCluster(s)).rejects.toMatchObject({ reason: 'Conflict' });
    expect(await jobEnd(bpa.client, jobId)).toMatchObject({ state: 'succeeded' });
    expect(bpa.bpa.engine.steps(jobId)).toEqual([
      `reset ${w1.name}`,
      `reset ${cp2.name}`,
      `reset ${cp1.name}`,
      'forget',
    ]);
    expect(kubeadmTimeline([cp1, cp2, w1]).filter((c) => c.endsWith(' reset -f'))).toEqual([
      `${w1.name} kubeadm reset -f`,
      `${cp2.name} kubeadm reset -f`,
      `${cp1.name} kubeadm reset -f`,
    ]);
    for (const h of [cp1, cp2, w1]) expect(existsSync(join(h.root, 'etc/kubernetes'))).toBe(false);
    rmSync(join(w1.root, 'etc/fixture-sleep'), { recursive: true });
    expect(await bpa.client.getCluster('gone')).toBeUndefined();
    expect(await bpa.client.kubeconfig('gone')).toBeUndefined();
    expect(await bpa.client.resetCluster('gone')).toBe(false);

    // Gone for good: the same name is a new bring-up, whose kubeconfig is the new cluster's (here the lab kubeadm
    // hands out the one it was given, as a lab test does with the lab's real API server).
    mkdirSync(join(cp1.root, 'etc/icn-lab'), { recursive: true });
    writeFileSync(join(cp1.root, 'etc/icn-lab/admin.conf'), 'apiVersion: v1\nkind: Config\n# the lab cluster\n');
    const again = await bpa.client.startCluster(s);
    expect(again).toMatchObject({ jobId: 'cluster-gone.bring-up-1', operation: 'bring-up' });
    expect(await jobEnd(bpa.client, again.jobId)).toMatchObject({ state: 'succeeded' });
    expect(kubeadmCalls(cp1).filter((c) => c.startsWith('kubeadm init --'))).toHaveLength(2);
    expect(await bpa.client.kubeconfig('gone')).toBe('apiVersion: v1\nkind: Config\n# the lab cluster\n');
  });

  it('resumes an upgrade after a BPA restart without upgrading a host twice', async () => {
    const [cp1, cp2, w1] = hosts(13, 3) as [SshHost, SshHost, SshHost];
    const dataDir = join(dir, 'bpa-restart');
    const port = await freePort();
    const first = await spawnBpa(dataDir, info, port);
    children.push(first.child);
    await first.client.putSecret(keyRef.name, {
      type: 'ssh-key',
      stringData: { privateKey: readFileSync(info.clientKeyPath, 'utf8') },
    });
    for (const p of [...v134, ...v135]) await uploadPackage(first.client, p);
    await bringUp(
      first.client,
      spec('resume', [clusterHost(cp1, 'control-plane'), clusterHost(cp2, 'control-plane'), clusterHost(w1, 'worker')]),
    );
    // Every kubeadm call now takes a second, so that the BPA can be killed while one runs.
    for (const h of [cp1, cp2, w1]) {
      mkdirSync(join(h.root, 'etc/fixture-sleep'), { recursive: true });
      writeFileSync(join(h.root, 'etc/fixture-sleep/kubeadm'), '1');
    }
    const started = await first.client.upgradeCluster('resume', {
      kubernetesVersion: 'v1.35.0',
      packages: v135.map((p) => p.pkg),
    });
    // Killed while the second control plane upgrades: the first is done, the worker not started.
    while (!kubeadmCalls(cp2).includes('kubeadm upgrade node')) await sleep(20);
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    const journal = readFileSync(join(dataDir, 'jobs', `${started.jobId}.jsonl`), 'utf8');
    expect(journal).toContain(`"upgrade apply ${cp1.name}"`);
    expect(journal).not.toContain(`"upgrade node ${cp2.name}"`);
    expect(kubeadmCalls(w1)).not.toContain('kubeadm upgrade node');

    const second = await spawnBpa(dataDir, info, port);
    children.push(second.child);
    expect(await jobEnd(second.client, started.jobId)).toMatchObject({ state: 'succeeded' });
    expect(await second.client.getCluster('resume')).toMatchObject({
      state: 'succeeded',
      kubernetesVersion: 'v1.35.0',
      steps: [
        'packages',
        `upgrade apply ${cp1.name}`,
        `upgrade node ${cp2.name}`,
        `upgrade node ${w1.name}`,
        'kubernetes-version v1.35.0',
      ],
    });
    // The host cut off mid-upgrade finished on its own; the resumed job found it done.
    expect(kubeadmCalls(cp1).filter((c) => c.startsWith('kubeadm upgrade'))).toEqual([
      'kubeadm upgrade apply v1.35.0 -y',
    ]);
    for (const h of [cp2, w1]) {
      expect(kubeadmCalls(h).filter((c) => c.startsWith('kubeadm upgrade'))).toEqual(['kubeadm upgrade node']);
      expect(onHost(h.root, 'var/lib/fixture/kubeadm/kubernetes-version')).toBe('1.35.0');
    }
    for (const h of [cp1, cp2, w1]) expect(onHost(h.root, 'var/lib/fixture/kubeadm/install.count')).toBe('2');
    second.child.kill('SIGTERM');
    await new Promise((r) => second.child.once('exit', r));
  });

  it('reads a journal written before clusters had operations: the bring-up is the cluster', async () => {
    const dataDir = join(dir, 'bpa-legacy');
    mkdirSync(join(dataDir, 'jobs'), { recursive: true });
    mkdirSync(join(dataDir, 'clusters', 'old'), { recursive: true });
    writeFileSync(join(dataDir, 'clusters', 'old', 'kubeconfig'), 'apiVersion: v1\n');
    const [a, b] = hosts(0, 2) as [SshHost, SshHost];
    const old: ClusterSpec = spec('old', [clusterHost(a, 'control-plane'), clusterHost(b, 'worker')]);
    const lines = [
      { type: 'job', kind: 'cluster', spec: ClusterSpec.parse(old), createdAt: new Date().toISOString() },
      ...['packages', `init ${a.name}`, `join ${b.name}`, 'kubeconfig'].map((step) => ({ type: 'step', step })),
      { type: 'done', state: 'succeeded', finishedAt: new Date().toISOString() },
    ];
    writeFileSync(join(dataDir, 'jobs', 'cluster-old.jsonl'), lines.map((l) => `${JSON.stringify(l)}\n`).join(''));
    const legacy = await startBpa(dataDir, info);
    try {
      const status = await legacy.client.getCluster('old');
      expect(status).toMatchObject({
        jobId: 'cluster-old',
        operation: 'bring-up',
        state: 'succeeded',
        kubernetesVersion: 'v1.34.2',
        hosts: [
          { name: a.name, role: 'control-plane' },
          { name: b.name, role: 'worker' },
        ],
      });
      expect(await legacy.client.startCluster(old)).toMatchObject({ jobId: 'cluster-old' });
    } finally {
      await legacy.close();
    }
  });
});
