// Needs: real sshd hosts (their own), a BPA in this process, an inventory store (PGlite).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ApplicationFailure } from '@temporalio/common';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createBpmActivities, derivedJobId } from '../../src/activities/bpm.ts';
import { BpaClient } from '../../src/clients/bpa/index.ts';
import type { LabPackage } from '../bpa/support.ts';
import { onHost } from '../bpa/support.ts';
import {
  artifactSpecOf,
  attempt,
  type BpmSite,
  keyLines,
  sent,
  type SiteHost,
  siteSpec,
  sshKeySecret,
  startBpmSite,
  tokenSecret,
} from '../support/bpm-site.ts';

const site = 'bpm-edge';
const workflowId = `site-install/${site}`;

let lab: BpmSite;
let bpm: ReturnType<typeof createBpmActivities>;
let a: SiteHost;
let b: SiteHost;
/** kubelet, containerd and kubeadm 1.0.0, in the inventory's artifacts. */
let base: LabPackage[];

beforeAll(async () => {
  lab = await startBpmSite({ prefix: 'bpm', site, hostNames: ['edge-a', 'edge-b'] });
  [a, b] = lab.hosts as [SiteHost, SiteHost];
  // Every upload heartbeats from its start here; the default grace has its own case below.
  bpm = createBpmActivities({ ...lab.deps, heartbeatGraceMs: 0 });
  base = [];
  for (const name of ['kubelet', 'containerd', 'kubeadm']) base.push(await lab.centralPackage(name, name, '1.0.0'));
});

afterAll(async () => {
  await lab.close();
});

const sha = (p: LabPackage) => p.pkg.artifact.sha256;
const bpaUrl = () => lab.bpa.url;

/** The ApplicationFailure an attempt ended with (its type, retryability, message, details). */
function failure(error: unknown): ApplicationFailure {
  expect(error).toBeInstanceOf(ApplicationFailure);
  return error as ApplicationFailure;
}

describe('BPM activities: the inventory site, its BPA and real sshd hosts', () => {
  it('distributeArtifacts uploads only what the BPA lacks, heartbeating the offset of each', async () => {
    const [kubelet, containerd, kubeadm] = base as [LabPackage, LabPackage, LabPackage];
    await lab.bpa.client.uploadArtifact(artifactSpecOf(kubelet), kubelet.file);

    const run = await attempt(() =>
      bpm.distributeArtifacts({ site, bpaUrl: bpaUrl(), sha256s: [...base.map(sha), sha(kubelet)] }),
    );
    expect(run.error).toBeUndefined();
    expect(run.result).toEqual({ uploaded: 2 });
    expect((await lab.bpa.client.listArtifacts()).map((x) => x.sha256).sort()).toEqual(base.map(sha).sort());
    // Each artifact sent is reported from 0 to its size, chunk by chunk (512-byte chunks); the one held is not sent.
    for (const p of [containerd, kubeadm]) {
      const offsets = run.heartbeats
        .filter((h) => (h as { sha256?: string }).sha256 === sha(p))
        .map((h) => (h as { offset: number }).offset);
      expect(offsets[0]).toBe(0);
      expect(offsets.at(-1)).toBe(p.size);
      expect(offsets.length).toBeGreaterThanOrEqual(1 + Math.ceil(p.size / 512));
      expect([...offsets].sort((x, y) => x - y)).toEqual(offsets);
    }
    expect(run.heartbeats).not.toContainEqual(expect.objectContaining({ sha256: sha(kubelet) }));
    // The BPA's copies are whole: what it holds matches what the inventory holds.
    for (const p of base) expect((await lab.bpa.client.getArtifact(sha(p)))?.size).toBe(p.size);

    const again = await attempt(() => bpm.distributeArtifacts({ site, bpaUrl: bpaUrl(), sha256s: base.map(sha) }));
    expect(again.result).toEqual({ uploaded: 0 });
    expect(again.heartbeats).toEqual([]);
  });

  it('distributeArtifacts heartbeats only once an upload has run a third of its heartbeat timeout', async () => {
    const quick = await lab.centralPackage('kubelet', 'kubelet', '1.0.1');
    const graceful = createBpmActivities(lab.deps);
    // attempt() gives a 30 s heartbeat timeout: 10 s of grace, far more than this upload takes.
    const run = await attempt(() => graceful.distributeArtifacts({ site, bpaUrl: bpaUrl(), sha256s: [sha(quick)] }));
    expect(run.error).toBeUndefined();
    expect(run.result).toEqual({ uploaded: 1 });
    expect(run.heartbeats).toEqual([]);
    expect((await lab.bpa.client.getArtifact(sha(quick)))?.size).toBe(quick.size);
  });

  it('installPackages installs on the named hosts and returns their versions; a retried attempt joins its job', async () => {
    const packages = base.map((p) => p.pkg);
    const ids = { workflowId, activityId: '7' };
    const run = await attempt(
      () => bpm.installPackages({ site, bpaUrl: bpaUrl(), hosts: [a.name, b.name], packages }),
      ids,
    );
    expect(run.error).toBeUndefined();
    const versions = { kubelet: '1.0.0', containerd: '1.0.0', kubeadm: '1.0.0' };
    expect(run.result).toEqual({ [a.name]: versions, [b.name]: versions });

    // The job is named after the workflow and the activity, and ran on exactly the named hosts.
    const jobId = derivedJobId(`${workflowId}-7`);
    expect(jobId).toBe('site-install-bpm-edge-7');
    const job = await lab.bpa.client.getJob(jobId);
    expect(job).toMatchObject({ state: 'succeeded', action: 'install' });
    expect(job?.hosts.map((h) => h.host).sort()).toEqual([a.name, b.name]);
    expect(run.heartbeats.at(-1)).toEqual({ jobId, summary: { pending: 0, running: 0, succeeded: 2, failed: 0 } });
    for (const h of [a, b]) {
      for (const p of ['kubelet', 'containerd']) expect(onHost(h.ssh.root, 'opt', p, 'version')).toBe('1.0.0');
      expect(onHost(h.ssh.root, 'var/lib/fixture/kubelet/install.count')).toBe('1');
      expect(onHost(h.ssh.root, 'var/lib/fixture/kubeadm/install.count')).toBe('1');
    }
    // The key went from the inventory to the BPA (write-only there), under the inventory secret's name.
    const keyFile = lab.bpaSecretFile(sshKeySecret);
    expect(readFileSync(keyFile, 'utf8')).toBe(lab.privateKey);
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    // The BPA records what each host runs.
    expect((await lab.bpa.client.installed(a.name)).map((r) => `${r.name} ${r.version}`).sort()).toEqual([
      'containerd 1.0.0',
      'kubeadm 1.0.0',
      'kubelet 1.0.0',
    ]);

    // The retried attempt (same workflow, same activity) finds its job: no second job, nothing installed twice.
    const jobs = (await lab.bpa.client.listJobs()).length;
    const retry = await attempt(
      () => bpm.installPackages({ site, bpaUrl: bpaUrl(), hosts: [a.name, b.name], packages }),
      ids,
    );
    expect(retry.result).toEqual(run.result);
    expect((await lab.bpa.client.listJobs()).length).toBe(jobs);
    expect((await lab.bpa.client.getJob(jobId))?.createdAt).toBe(job?.createdAt);
    for (const h of [a, b]) {
      expect(onHost(h.ssh.root, 'var/lib/fixture/kubelet/install.count')).toBe('1');
      expect(onHost(h.ssh.root, 'var/lib/fixture/kubelet/calls')).toBe('install 1.0.0\nverify 1.0.0');
    }
  });

  it('waits for a job on its event stream alone: the ended job comes with its end, not read again', async () => {
    const requests: string[] = [];
    const counted = createBpmActivities({
      ...lab.deps,
      bpa: (url, bearer) =>
        new BpaClient({
          url,
          token: bearer,
          fetch: (input, init) => {
            requests.push(`${init?.method ?? 'GET'} ${new URL(input instanceof Request ? input.url : input).pathname}`);
            return fetch(input, init);
          },
        }),
    });
    const packages = [base[0]!.pkg];
    const run = await attempt(() => counted.installPackages({ site, bpaUrl: bpaUrl(), hosts: [b.name], packages }), {
      workflowId,
      activityId: 'stream-only',
    });
    expect(run.error).toBeUndefined();
    expect(run.result).toEqual({ [b.name]: { kubelet: '1.0.0' } });
    const jobId = derivedJobId(`${workflowId}-stream-only`);
    expect(requests).toContain(`GET /v1/jobs/${jobId}/events`);
    expect(requests).not.toContain(`GET /v1/jobs/${jobId}`);
  });

  it('a package failing on a host fails non-retryably as PackagesFailed, naming that host', async () => {
    const drv = await lab.centralPackage('example-driver', 'drv', '1.0.0');
    await attempt(() => bpm.distributeArtifacts({ site, bpaUrl: bpaUrl(), sha256s: [sha(drv)] }));
    mkdirSync(join(b.ssh.root, 'etc/fixture-fail'), { recursive: true });
    writeFileSync(join(b.ssh.root, 'etc/fixture-fail/drv'), '');

    const run = await attempt(
      () => bpm.installPackages({ site, bpaUrl: bpaUrl(), hosts: [a.name, b.name], packages: [drv.pkg] }),
      { workflowId, activityId: 'drv' },
    );
    const err = failure(run.error);
    expect(err.type).toBe('PackagesFailed');
    expect(err.nonRetryable).toBe(true);
    expect(err.message).toContain('failed on 1 host(s)');
    expect(err.message).toContain(`${b.name}: `);
    expect(err.message).toContain('drv: install refused on purpose');
    expect(err.message).not.toContain(`${a.name}:`);
    const jobId = derivedJobId(`${workflowId}-drv`);
    expect(err.details).toEqual([{ jobId, failedHosts: [b.name] }]);
    // The BPA's job and the hosts agree: installed on one, not on the other.
    const job = await lab.bpa.client.getJob(jobId);
    expect(job?.state).toBe('failed');
    expect(job?.hosts.find((h) => h.host === b.name)?.state).toBe('failed');
    expect(job?.hosts.find((h) => h.host === a.name)?.state).toBe('succeeded');
    expect(onHost(a.ssh.root, 'opt/drv/version')).toBe('1.0.0');
    expect(onHost(b.ssh.root, 'opt/drv/version')).toBeUndefined();
  });

  it('rollbackPackages takes the hosts at the version given up back to the one before; others are left alone', async () => {
    const next = await lab.centralPackage('kubelet', 'kubelet', '1.1.0');
    await attempt(() => bpm.distributeArtifacts({ site, bpaUrl: bpaUrl(), sha256s: [sha(next)] }));
    const up = await attempt(
      () => bpm.installPackages({ site, bpaUrl: bpaUrl(), hosts: [a.name], packages: [next.pkg] }),
      { workflowId: `site-patch/${site}`, activityId: 'install-a' },
    );
    expect(up.result).toEqual({ [a.name]: { kubelet: '1.1.0' } });
    expect(onHost(a.ssh.root, 'opt/kubelet/version')).toBe('1.1.0');
    expect(onHost(b.ssh.root, 'opt/kubelet/version')).toBe('1.0.0');

    const jobs = (await lab.bpa.client.listJobs()).length;
    const nothing = await attempt(() =>
      bpm.rollbackPackages({ site, bpaUrl: bpaUrl(), hosts: [a.name, b.name], packages: [] }),
    );
    expect(nothing.error).toBeUndefined();
    expect((await lab.bpa.client.listJobs()).length).toBe(jobs);

    const callsOfB = onHost(b.ssh.root, 'var/lib/fixture/kubelet/calls');
    const back = await attempt(
      () => bpm.rollbackPackages({ site, bpaUrl: bpaUrl(), hosts: [a.name, b.name], packages: [next.pkg] }),
      { workflowId: `site-patch/${site}`, activityId: 'rollback' },
    );
    expect(back.error).toBeUndefined();
    expect(onHost(a.ssh.root, 'opt/kubelet/version')).toBe('1.0.0');
    expect(onHost(a.ssh.root, 'var/lib/fixture/kubelet/calls')?.split('\n').slice(-2)).toEqual([
      'install 1.0.0',
      'verify 1.0.0',
    ]);
    // edge-b never had 1.1.0: nothing ran there.
    expect(onHost(b.ssh.root, 'opt/kubelet/version')).toBe('1.0.0');
    expect(onHost(b.ssh.root, 'var/lib/fixture/kubelet/calls')).toBe(callsOfB);
    const job = await lab.bpa.client.getJob(derivedJobId(`site-patch/${site}-rollback`));
    expect(job).toMatchObject({ action: 'rollback', state: 'succeeded' });
    expect(job?.hosts.find((h) => h.host === a.name)?.packages).toEqual([
      { name: 'kubelet', version: '1.0.0', from: '1.1.0', outcome: 'rolled-back' },
    ]);
    expect(job?.hosts.find((h) => h.host === b.name)?.packages).toEqual([
      { name: 'kubelet', version: '1.0.0', outcome: 'skipped' },
    ]);
    const latest = (await lab.bpa.client.installed(a.name)).filter((r) => r.name === 'kubelet');
    expect(latest.map((r) => r.version)).toEqual(['1.0.0']);
  });

  it('bringUpCluster stores the kubeconfig as an inventory secret and returns only its name', async () => {
    const run = await attempt(
      () =>
        bpm.bringUpCluster({
          site,
          bpaUrl: bpaUrl(),
          kubernetesVersion: '1.34.2',
          packages: base.map((p) => p.pkg),
        }),
      { workflowId, activityId: 'cluster' },
    );
    expect(run.error).toBeUndefined();
    expect(run.result).toBe(`${site}-kubeconfig`);

    const adminConf = readFileSync(join(a.ssh.root, 'etc/kubernetes/admin.conf'), 'utf8');
    expect(adminConf).toContain('server: https://10.20.0.10:6443');
    const secret = await lab.store.secrets.reveal(`${site}-kubeconfig`);
    expect(secret).toEqual({ type: 'kubeconfig', data: { kubeconfig: adminConf } });
    expect((await lab.store.secrets.get(`${site}-kubeconfig`)).metadata.labels).toEqual({
      'icn.akraino.org/site': site,
    });
    // The init ran on the control plane, the join on the worker; the BPA's record says the same.
    expect(onHost(a.ssh.root, 'var/lib/fixture/kubeadm/calls')).toMatch(
      /^kubeadm init --kubernetes-version=v?1\.34\.2 /,
    );
    expect(onHost(b.ssh.root, 'var/lib/fixture/kubeadm/calls')).toMatch(/^kubeadm join 10\.20\.0\.10:6443 /);
    expect(await lab.bpa.client.getCluster(site)).toMatchObject({ state: 'succeeded', kubeconfigReady: true });
    // The kubeconfig's credential is in neither the result nor a heartbeat (what a workflow history would hold).
    const credential = /token: (\S+)/.exec(adminConf)?.[1];
    expect(credential).toBeDefined();
    expect(JSON.stringify([run.result, run.heartbeats])).not.toContain(credential);
    expect(JSON.stringify(run.heartbeats)).not.toContain('apiVersion');
  });

  it('refuses a site without bpaTokenRef non-retryably, and no token or SSH key ever leaves an activity', async () => {
    const noToken = 'bpm-no-token';
    await lab.store.sites.create({ name: noToken }, siteSpec(lab.hosts, { bpaUrl: bpaUrl() }));
    for (const run of [
      await attempt(() => bpm.installPackages({ site: noToken, bpaUrl: bpaUrl(), hosts: [a.name], packages: [] })),
      await attempt(() => bpm.distributeArtifacts({ site: noToken, bpaUrl: bpaUrl(), sha256s: base.map(sha) })),
    ]) {
      const err = failure(run.error);
      expect(err.nonRetryable).toBe(true);
      expect(err.type).toBe('Invalid');
      expect(err.message).toContain('endpoints.bpaTokenRef');
      expect(err.message).toContain(noToken);
    }

    // Secrets that are wrong in every other way: each fails, and each message names the secret, not its value.
    const wrongToken = 'wrong-token-never-to-be-seen-4711';
    await lab.store.secrets.put({ name: 'wrong-token' }, 'token', { token: wrongToken });
    const badKey = `-----BEGIN OPENSSH PRIVATE KEY-----\nbm90LWEta2V5LWJ1dC1hLXNlY3JldC00MjQy\n-----END OPENSSH PRIVATE KEY-----\n`;
    await lab.store.secrets.put({ name: 'bad-key' }, 'ssh-key', { privateKey: badKey });
    const variants = [
      {
        name: 'bpm-key-as-token',
        tokenRef: sshKeySecret,
        type: 'Invalid',
        says: [`secret "${sshKeySecret}" is not a token secret`],
      },
      { name: 'bpm-wrong-token', tokenRef: 'wrong-token', type: 'Unauthorized', says: ['401', 'bearer token'] },
      {
        name: 'bpm-token-as-key',
        tokenRef: tokenSecret,
        keyRef: tokenSecret,
        type: 'Invalid',
        says: [`secret "${tokenSecret}" is not an ssh-key secret`],
      },
      {
        name: 'bpm-bad-key',
        tokenRef: tokenSecret,
        keyRef: 'bad-key',
        type: 'PackagesFailed',
        says: [`${a.name}: `, 'Cannot parse privateKey'],
      },
    ];
    for (const v of variants) {
      await lab.store.sites.create(
        { name: v.name },
        siteSpec(lab.hosts, { bpaUrl: bpaUrl(), tokenRef: v.tokenRef, ...(v.keyRef && { keyRef: v.keyRef }) }),
      );
      const run = await attempt(
        () => bpm.installPackages({ site: v.name, bpaUrl: bpaUrl(), hosts: [a.name], packages: [base[0]!.pkg] }),
        { workflowId: `site-patch/${v.name}`, activityId: '1' },
      );
      const err = failure(run.error);
      expect({ site: v.name, nonRetryable: err.nonRetryable }).toEqual({ site: v.name, nonRetryable: true });
      for (const words of v.says) expect(err.message).toContain(words);
      expect(err.type).toBe(v.type);
    }

    // Across every attempt of this file: no heartbeat and no failure message holds a token or a key.
    const everything = JSON.stringify(sent);
    expect(sent.messages.length).toBeGreaterThanOrEqual(7);
    expect(sent.heartbeats.length).toBeGreaterThan(10);
    for (const secret of [lab.token, wrongToken, ...keyLines(lab.privateKey), ...keyLines(badKey)]) {
      expect(everything).not.toContain(secret);
    }
  });
});
