// Needs: real sshd hosts (3 of its own, from the ssh-hosts lab peer's startSshHosts), the BPA as a child process.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { freePort } from '../../deploy/dev/lab/processes.ts';
import { type SshHostsInfo, startSshHosts, stopSshHosts } from '../../deploy/dev/lab/ssh-hosts.ts';
import { labHosts, labPackage, onHost, spawnBpa, uploadPackage, waitUntil } from './support.ts';
import { readFileSync } from 'node:fs';

let dir: string;
let info: SshHostsInfo;
const children: ChildProcess[] = [];
const name = 'example-driver';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'icn-bpa-restart-'));
  info = await startSshHosts({ count: 3, dir: join(dir, 'lab') });
  // Every install takes a second, so that the BPA can be killed while one runs.
  for (const h of info.hosts) {
    mkdirSync(join(h.root, 'etc/fixture-sleep'), { recursive: true });
    writeFileSync(join(h.root, 'etc/fixture-sleep', name), '1');
  }
});

afterAll(async () => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await stopSshHosts(join(dir, 'lab'));
  rmSync(dir, { recursive: true, force: true });
});

describe('BPA restarted mid-job', () => {
  it('resumes the unfinished job from its journal and completes it without doing anything twice', async () => {
    const dataDir = join(dir, 'bpa');
    const port = await freePort();
    const first = await spawnBpa(dataDir, info, port, { ICN_BPA_PARALLELISM: '1' });
    children.push(first.child);
    await first.client.putSecret('lab-ssh', {
      type: 'ssh-key',
      stringData: { privateKey: readFileSync(info.clientKeyPath, 'utf8') },
    });
    const p = labPackage(join(dir, 'pkgs'), 'example-driver', name, '1.0.0');
    await uploadPackage(first.client, p);
    await first.client.startJob({ id: 'restart', hosts: labHosts(info), packages: [p.pkg] });

    // Killed while the second host installs: the first is done, the third not started.
    await waitUntil(
      'the second host to be installing',
      async () => {
        const job = await first.client.getJob('restart');
        return job?.hosts[0]?.state === 'succeeded' && job.hosts[1]?.state === 'running';
      },
      30_000,
    );
    await waitUntil(
      'the install to run on the second host',
      async () => onHost(info.hosts[1]!.root, 'var/lib/fixture', name, 'calls') !== undefined,
      10_000,
    );
    first.child.kill('SIGKILL');
    await new Promise((r) => first.child.once('exit', r));
    expect(onHost(info.hosts[2]!.root, 'var/lib/fixture', name, 'calls')).toBeUndefined();

    const second = await spawnBpa(dataDir, info, port, { ICN_BPA_PARALLELISM: '1' });
    children.push(second.child);
    await waitUntil(
      'the resumed job to end',
      async () => (await second.client.getJob('restart'))?.state === 'succeeded',
      60_000,
    );
    const job = (await second.client.getJob('restart'))!;
    expect(job.summary).toEqual({ pending: 0, running: 0, succeeded: 3, failed: 0 });
    for (const h of info.hosts) {
      expect(onHost(h.root, 'var/lib/fixture', name, 'install.count')).toBe('1');
      expect(onHost(h.root, 'var/lib/icn-bpa/packages', name)).toBe(`1.0.0 ${p.pkg.artifact.sha256}`);
    }
    // The host cut off mid-install finished on its own; the resumed job found it recorded and skipped it.
    expect(job.hosts[1]!.packages).toEqual([{ name, version: '1.0.0', outcome: 'skipped' }]);
    expect(job.hosts[2]!.packages).toEqual([{ name, version: '1.0.0', outcome: 'installed' }]);
    expect((await second.client.installed()).map((r) => r.host).sort()).toEqual(['host-001', 'host-002', 'host-003']);
    second.child.kill('SIGTERM');
    await new Promise((r) => second.child.once('exit', r));
  });
});
