// Needs: real sshd hosts (2 of their own, from the ssh-hosts lab peer's startSshHosts) and a BPA in this process.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { MockActivityEnvironment } from '@temporalio/testing';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type SshHostsInfo, startSshHosts, stopSshHosts } from '../../deploy/dev/lab/ssh-hosts.ts';
import { createBpmActivities, derivedJobId } from '../../src/activities/bpm.ts';
import type { ArtifactSpec } from '../../src/domain/artifact.ts';
import { keyRef, labHosts, labPackage, onHost, startBpa, type TestBpa } from '../bpa/support.ts';

let dir: string;
let info: SshHostsInfo;
let bpa: TestBpa;
const saved = new Map<string, string>();

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'icn-bpm-'));
  info = await startSshHosts({ count: 2, dir: join(dir, 'lab') });
  bpa = await startBpa(join(dir, 'bpa'), info);
});

afterAll(async () => {
  await bpa.close();
  await stopSshHosts(join(dir, 'lab'));
  rmSync(dir, { recursive: true, force: true });
});

const pkgDir = () => join(dir, 'central');
const packages = () => ['kubelet', 'containerd', 'kubeadm'].map((n) => labPackage(pkgDir(), n, n, '1.0.0'));
const files = () => new Map(packages().map((p) => [p.pkg.artifact.sha256, p.file]));
const specOf = (p: ReturnType<typeof packages>[number]): ArtifactSpec => ({
  type: 'binary-package',
  name: p.pkg.name,
  version: p.pkg.version,
  sha256: p.pkg.artifact.sha256,
  size: p.size,
  metadata: {},
});

type Bpm = ReturnType<typeof createBpmActivities>;

/** Runs one BPM activity in a mock activity context, its input typed by the activity's own parameter. */
async function inEnv<K extends keyof Bpm>(
  env: MockActivityEnvironment,
  name: K,
  input: Parameters<Bpm[K]>[0],
  acts: Bpm = activities(),
): Promise<Awaited<ReturnType<Bpm[K]>>> {
  const fn = acts[name] as (input: Parameters<Bpm[K]>[0]) => Promise<Awaited<ReturnType<Bpm[K]>>>;
  const result: unknown = await env.run(async () => fn(input));
  return result as Awaited<ReturnType<Bpm[K]>>;
}

function activities(pollIntervalMs = 100) {
  return createBpmActivities({
    bpaFor: () => bpa.client,
    artifactPath: (sha) => files().get(sha) ?? '/nonexistent',
    saveKubeconfig: async (site, cluster, kubeconfig) => {
      saved.set(`${site}-${cluster}-kubeconfig`, kubeconfig);
      return `${site}-${cluster}-kubeconfig`;
    },
    pollIntervalMs,
  });
}

describe('BPM activities against a BPA and real sshd hosts', () => {
  it('uploads only what the BPA lacks', async () => {
    const [kubelet, containerd, kubeadm] = packages() as [
      ReturnType<typeof packages>[number],
      ReturnType<typeof packages>[number],
      ReturnType<typeof packages>[number],
    ];
    await bpa.client.uploadArtifact(specOf(kubelet), kubelet.file);
    const env = new MockActivityEnvironment();
    const heartbeats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => heartbeats.push(d));
    const result = await inEnv(env, 'distributeArtifacts', {
      site: 'edge-1',
      artifacts: [kubelet, containerd, kubeadm].map(specOf),
    });
    expect(result).toEqual({
      uploaded: [containerd.pkg.artifact.sha256, kubeadm.pkg.artifact.sha256],
      present: [kubelet.pkg.artifact.sha256],
    });
    expect(heartbeats).toContainEqual({ sha256: kubeadm.pkg.artifact.sha256, offset: kubeadm.size });
    expect((await bpa.client.listArtifacts()).map((a) => a.sha256).sort()).toEqual(
      packages()
        .map((p) => p.pkg.artifact.sha256)
        .sort(),
    );
  });

  it('starts an install job and waits for it with heartbeats; a retry resumes from the heartbeat, not a new job', async () => {
    const pkgs = packages().map((p) => p.pkg);
    const env = new MockActivityEnvironment({
      activityId: '7',
      workflowExecution: { workflowId: 'site-install/edge-1', runId: 'r1' },
    });
    const heartbeats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => heartbeats.push(d));
    const result = await inEnv(env, 'runInstallJob', {
      site: 'edge-1',
      spec: { hosts: labHosts(info), packages: pkgs },
    });
    const jobId = derivedJobId('site-install/edge-1-7');
    expect(jobId).toBe('site-install-edge-1-7');
    expect(result).toEqual({
      jobId,
      state: 'succeeded',
      summary: { pending: 0, running: 0, succeeded: 2, failed: 0 },
      failedHosts: [],
    });
    expect(heartbeats[0]).toEqual({ jobId });
    expect(heartbeats.at(-1)).toEqual({ jobId, summary: result.summary });
    for (const h of info.hosts) expect(onHost(h.root, 'var/lib/fixture/kubelet/install.count')).toBe('1');

    // The retried attempt finds its job through the heartbeat details: no second job, nothing installed twice.
    const jobsBefore = (await bpa.client.listJobs()).length;
    const retry = new MockActivityEnvironment({ heartbeatDetails: { jobId } });
    const again = await inEnv(retry, 'runInstallJob', {
      site: 'edge-1',
      spec: { hosts: labHosts(info), packages: pkgs },
    });
    expect(again.jobId).toBe(jobId);
    expect((await bpa.client.listJobs()).length).toBe(jobsBefore);
    for (const h of info.hosts) expect(onHost(h.root, 'var/lib/fixture/kubelet/install.count')).toBe('1');
  });

  it('reports failed hosts of a job, and fails a non-retryable refusal at once', async () => {
    const p = labPackage(pkgDir(), 'example-driver', 'drv', '1.0.0', { install: 'exit 3' });
    await bpa.client.uploadArtifact(specOf(p), p.file);
    const env = new MockActivityEnvironment();
    const result = await inEnv(env, 'runInstallJob', {
      site: 'edge-1',
      spec: { id: 'bpm-failing', hosts: labHosts(info), packages: [p.pkg] },
    });
    expect(result.state).toBe('failed');
    expect(result.failedHosts.map((h) => h.host)).toEqual(['host-001', 'host-002']);
    expect(result.failedHosts[0]!.error).toContain('install exited 3');

    const refused = await inEnv(new MockActivityEnvironment(), 'runInstallJob', {
      site: 'edge-1',
      spec: { id: 'bpm-failing', hosts: labHosts(info).slice(0, 1), packages: [p.pkg] },
    }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ type: 'bpa.Conflict', nonRetryable: true });
  });

  it('brings a cluster up and keeps its kubeconfig as a secret, not in the result', async () => {
    const env = new MockActivityEnvironment();
    const [h1, h2] = info.hosts as [SshHostsInfo['hosts'][0], SshHostsInfo['hosts'][0]];
    const status = await inEnv(env, 'bringUpCluster', {
      site: 'edge-1',
      spec: {
        name: 'edge-1',
        kubernetesVersion: '1.34.2',
        controlPlaneEndpoint: { host: '10.0.0.1' },
        hosts: [
          { name: h1.name, address: h1.host, port: h1.port, role: 'control-plane', keyRef },
          { name: h2.name, address: h2.host, port: h2.port, role: 'worker', keyRef },
        ],
        packages: packages().map((p) => p.pkg),
      },
    });
    expect(status).toMatchObject({ state: 'succeeded', kubeconfigReady: true });
    const fetched = await inEnv(new MockActivityEnvironment(), 'fetchKubeconfig', {
      site: 'edge-1',
      cluster: 'edge-1',
    });
    expect(fetched).toEqual({ secretName: 'edge-1-edge-1-kubeconfig' });
    expect(saved.get('edge-1-edge-1-kubeconfig')).toContain('server: https://10.0.0.1:6443');
  });

  it('fails clearly on a worker without BPM', async () => {
    const none = createBpmActivities(undefined);
    await expect(
      inEnv(new MockActivityEnvironment(), 'fetchKubeconfig', { site: 's', cluster: 'c' }, none),
    ).rejects.toMatchObject({
      type: 'bpm.NotConfigured',
      nonRetryable: true,
    });
  });
});
