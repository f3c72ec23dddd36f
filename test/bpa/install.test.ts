// Needs: real sshd hosts (3 of its own, from the ssh-hosts lab peer's startSshHosts, in a temp folder).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type SshHostsInfo, startSshHosts, stopSshHosts } from '../../deploy/dev/lab/ssh-hosts.ts';
import type { InstallJob, JobEvent } from '../../src/domain/bpa.ts';
import { labHosts, labPackage, onHost, startBpa, type TestBpa, uploadPackage } from './support.ts';

let dir: string;
let info: SshHostsInfo;
let bpa: TestBpa;
const name = 'example-driver';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'icn-bpa-install-'));
  info = await startSshHosts({ count: 3, dir: join(dir, 'lab') });
  bpa = await startBpa(join(dir, 'bpa'), info);
});

afterAll(async () => {
  await bpa.close();
  await stopSshHosts(join(dir, 'lab'));
  rmSync(dir, { recursive: true, force: true });
});

const record = (root: string) => onHost(root, 'var/lib/icn-bpa/packages', name);
const count = (root: string, what = 'install') => Number(onHost(root, 'var/lib/fixture', name, `${what}.count`) ?? 0);

async function run(spec: Parameters<TestBpa['client']['startJob']>[0]): Promise<InstallJob> {
  const started = await bpa.client.startJob(spec);
  return bpa.bpa.engine.waitFor(started.id);
}

function outcomes(job: InstallJob): Record<string, string> {
  return Object.fromEntries(
    job.hosts.map((h) => [h.host, h.packages.map((p) => `${p.outcome} ${p.version}`).join(',')]),
  );
}

describe('BPA install jobs on real sshd hosts', () => {
  const v1 = () => labPackage(join(dir, 'pkgs'), 'example-driver', name, '1.0.0');
  const v2 = () =>
    labPackage(join(dir, 'pkgs'), 'example-driver', name, '1.1.0', { rollback: 'sh "$ICN_PACKAGE_FILE" rollback' });

  it('installs a package on every host, verified and recorded on the host and in the job store', async () => {
    const p = v1();
    await uploadPackage(bpa.client, p);
    const job = await run({ id: 'install-1', hosts: labHosts(info), packages: [p.pkg], parallelism: 2 });
    expect(job.state).toBe('succeeded');
    expect(job.summary).toEqual({ pending: 0, running: 0, succeeded: 3, failed: 0 });
    for (const h of info.hosts) {
      expect(record(h.root)).toBe(`1.0.0 ${p.pkg.artifact.sha256}`);
      expect(count(h.root)).toBe(1);
      expect(onHost(h.root, 'opt', name, 'version')).toBe('1.0.0');
      expect(onHost(h.root, 'var/lib/fixture', name, 'calls')).toBe('install 1.0.0\nverify 1.0.0');
    }
    expect(outcomes(job)).toEqual({
      'host-001': 'installed 1.0.0',
      'host-002': 'installed 1.0.0',
      'host-003': 'installed 1.0.0',
    });
    const installed = await bpa.client.installed('host-002');
    expect(installed).toEqual([
      expect.objectContaining({ host: 'host-002', name, version: '1.0.0', sha256: p.pkg.artifact.sha256 }),
    ]);
  });

  it('does nothing twice: a repeated job skips hosts at the version, and a repeated start returns the same job', async () => {
    const p = v1();
    const artifactOnHost = join(info.hosts[0]!.root, 'var/lib/icn-bpa/artifacts', p.pkg.artifact.sha256);
    const before = statSync(artifactOnHost).mtimeMs;
    const again = await bpa.client.startJob({
      id: 'install-1',
      hosts: labHosts(info),
      packages: [p.pkg],
      parallelism: 2,
    });
    expect(again.state).toBe('succeeded');
    const job = await run({ id: 'install-2', hosts: labHosts(info), packages: [p.pkg] });
    expect(job.state).toBe('succeeded');
    expect(outcomes(job)).toEqual({
      'host-001': 'skipped 1.0.0',
      'host-002': 'skipped 1.0.0',
      'host-003': 'skipped 1.0.0',
    });
    for (const h of info.hosts) expect(count(h.root)).toBe(1);
    expect(statSync(artifactOnHost).mtimeMs).toBe(before);
    // Another spec under a used id is refused rather than silently mixed.
    await expect(
      bpa.client.startJob({ id: 'install-1', hosts: labHosts(info).slice(0, 1), packages: [p.pkg] }),
    ).rejects.toMatchObject({
      peer: 'bpa',
      reason: 'Conflict',
      retryable: false,
    });
  });

  it('upgrades, streaming per-host progress as NDJSON', async () => {
    const p = v2();
    await uploadPackage(bpa.client, p);
    const started = await bpa.client.startJob({
      id: 'upgrade-1',
      hosts: labHosts(info),
      packages: [p.pkg],
      parallelism: 1,
    });
    const events: JobEvent[] = [];
    for await (const event of bpa.client.events(started.id)) events.push(event);
    expect(events.at(-1)).toMatchObject({ type: 'done', state: 'succeeded', summary: { succeeded: 3 } });
    // The ended job comes with its end, as a read of it gives it, and so it does to a stream opened after the end.
    const read = await bpa.client.getJob(started.id);
    expect(read?.state).toBe('succeeded');
    expect(events.at(-1)).toMatchObject({ job: read });
    const late: JobEvent[] = [];
    for await (const event of bpa.client.events(started.id)) late.push(event);
    expect(late.at(-1)).toEqual({
      type: 'done',
      jobId: started.id,
      state: 'succeeded',
      summary: read?.summary,
      job: read,
    });
    const finals = events.filter((e) => e.type === 'host' && e.progress.state === 'succeeded');
    expect(finals.map((e) => (e.type === 'host' ? e.progress.packages : []))).toContainEqual([
      { name, version: '1.1.0', from: '1.0.0', outcome: 'installed' },
    ]);
    for (const h of info.hosts) {
      expect(record(h.root)?.split('\n')).toEqual([
        `1.1.0 ${p.pkg.artifact.sha256}`,
        `1.0.0 ${v1().pkg.artifact.sha256}`,
      ]);
      expect(count(h.root)).toBe(2);
      expect(onHost(h.root, 'opt', name, 'version')).toBe('1.1.0');
    }
  });

  it('rolls back to the previous version once, even when the rollback is repeated', async () => {
    const p = v2();
    const job = await run({ id: 'rollback-1', action: 'rollback', hosts: labHosts(info), packages: [p.pkg] });
    expect(job.state).toBe('succeeded');
    expect(outcomes(job)).toEqual({
      'host-001': 'rolled-back 1.0.0',
      'host-002': 'rolled-back 1.0.0',
      'host-003': 'rolled-back 1.0.0',
    });
    for (const h of info.hosts) {
      expect(record(h.root)).toBe(`1.0.0 ${v1().pkg.artifact.sha256}`);
      expect(onHost(h.root, 'opt', name, 'version')).toBe('1.0.0');
      expect(count(h.root, 'rollback')).toBe(1);
    }
    const again = await run({ id: 'rollback-2', action: 'rollback', hosts: labHosts(info), packages: [p.pkg] });
    expect(outcomes(again)).toEqual({
      'host-001': 'skipped 1.0.0',
      'host-002': 'skipped 1.0.0',
      'host-003': 'skipped 1.0.0',
    });
    for (const h of info.hosts) expect(count(h.root, 'rollback')).toBe(1);
    expect((await bpa.client.installed('host-001'))[0]).toMatchObject({
      version: '1.0.0',
      sha256: v1().pkg.artifact.sha256,
    });
  });

  it('reports a host whose install command fails, and finishes the others', async () => {
    const p = labPackage(join(dir, 'pkgs'), 'example-driver', name, '1.2.0');
    await uploadPackage(bpa.client, p);
    const bad = info.hosts[1]!;
    mkdirSync(join(bad.root, 'etc/fixture-fail'), { recursive: true });
    writeFileSync(join(bad.root, 'etc/fixture-fail', name), '');
    try {
      const job = await run({ id: 'upgrade-fail', hosts: labHosts(info), packages: [p.pkg] });
      expect(job.state).toBe('failed');
      expect(job.summary).toEqual({ pending: 0, running: 0, succeeded: 2, failed: 1 });
      const failed = job.hosts.find((h) => h.host === bad.name)!;
      expect(failed).toMatchObject({ state: 'failed', packages: [{ name, version: '1.2.0', outcome: 'failed' }] });
      expect(failed.error).toContain('install refused on purpose');
      expect(failed.attempts).toBe(1);
      expect(record(bad.root)?.split('\n')[0]).toBe(`1.0.0 ${v1().pkg.artifact.sha256}`);
      for (const h of [info.hosts[0]!, info.hosts[2]!])
        expect(record(h.root)?.split('\n')[0]).toBe(`1.2.0 ${p.pkg.artifact.sha256}`);
    } finally {
      rmSync(join(bad.root, 'etc/fixture-fail'), { recursive: true, force: true });
    }
  });

  it('refuses an artifact whose content does not match its sha256, on the host too', async () => {
    const p = labPackage(join(dir, 'pkgs'), 'example-driver', name, '2.0.0');
    await uploadPackage(bpa.client, p);
    // The BPA's cached copy goes bad after the upload was verified: the host's own check refuses it.
    writeFileSync(bpa.bpa.artifacts.pathOf(p.pkg.artifact.sha256), 'x'.repeat(p.size));
    const job = await run({ id: 'corrupt', hosts: labHosts(info).slice(0, 1), packages: [p.pkg] });
    expect(job.state).toBe('failed');
    expect(job.hosts[0]!.error).toMatch(/sha256 mismatch on the host/);
    expect(job.hosts[0]!.attempts).toBe(1);
    const root = info.hosts[0]!.root;
    expect(record(root)?.split('\n')[0]).toBe(
      `1.2.0 ${labPackage(join(dir, 'pkgs'), 'example-driver', name, '1.2.0').pkg.artifact.sha256}`,
    );
    expect(onHost(root, 'var/lib/icn-bpa/artifacts', p.pkg.artifact.sha256)).toBeUndefined();

    // A job naming an artifact the BPA does not hold fails before touching any host.
    const unknown = { ...p.pkg, version: '2.0.1', artifact: { sha256: 'f'.repeat(64) } };
    const missing = await run({ id: 'missing', hosts: labHosts(info), packages: [unknown] });
    expect(missing).toMatchObject({ state: 'failed', summary: { pending: 3 } });
    expect(missing.error).toContain('is not held by this BPA');
  });
});
