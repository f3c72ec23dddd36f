// Needs: nothing beyond the file system (a temporary folder of its own, and the process table).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { removeDeadProcessesKubeconfigs, withKubeconfigFile } from '../../src/activities/kubeconfig-file.ts';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'icn-kubeconfig-sweep-test-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** The pid of a process that has exited: no process has it (until the system hands it out again). */
async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '']);
  await new Promise((resolve) => child.once('exit', resolve));
  return child.pid ?? 0;
}

function leftover(name: string): string {
  mkdirSync(join(dir, name));
  writeFileSync(join(dir, name, 'kubeconfig'), 'apiVersion: v1\n', { mode: 0o600 });
  return join(dir, name, 'kubeconfig');
}

describe('removeDeadProcessesKubeconfigs', () => {
  it("removes the kubeconfig files of processes that died, and keeps a live process's and anything else", async () => {
    const dead = await deadPid();
    const ofDead = leftover(`icn-kubeconfig-${dead}-Ab12Cd`);
    // The parent (jest): alive, and not this process.
    const ofLive = leftover(`icn-kubeconfig-${process.ppid}-Ef34Gh`);
    const unowned = leftover('icn-kubeconfig-Ij56Kl');
    // Named by this process's pid before it wrote any: an earlier process's (a restarted container, same pid).
    const ofEarlierSelf = leftover(`icn-kubeconfig-${process.pid}-Qr90St`);
    expect((await removeDeadProcessesKubeconfigs(dir)).sort()).toEqual(
      [`icn-kubeconfig-${dead}-Ab12Cd`, `icn-kubeconfig-${process.pid}-Qr90St`].sort(),
    );
    expect(existsSync(ofDead)).toBe(false);
    expect(existsSync(ofEarlierSelf)).toBe(false);
    expect(existsSync(ofLive)).toBe(true);
    expect(existsSync(unowned)).toBe(true);
  });
});

describe('withKubeconfigFile', () => {
  it("gives the step a 0600 file named by this process, gone afterwards, and has swept a dead process's first", async () => {
    const dead = await deadPid();
    const ofDead = join(tmpdir(), `icn-kubeconfig-${dead}-Mn78Op`);
    mkdirSync(ofDead);
    writeFileSync(join(ofDead, 'kubeconfig'), 'apiVersion: v1\n', { mode: 0o600 });
    const secrets = {
      reveal: async () => ({ type: 'kubeconfig', data: { kubeconfig: 'apiVersion: v1\nkind: Config\n' } }),
    };
    const scrub: string[] = [];
    let seen = '';
    await withKubeconfigFile(secrets as never, 'site-a-kubeconfig', scrub, async (file) => {
      seen = file;
      expect(file.startsWith(join(tmpdir(), `icn-kubeconfig-${process.pid}-`))).toBe(true);
      expect(existsSync(file)).toBe(true);
    });
    expect(existsSync(seen)).toBe(false);
    expect(existsSync(ofDead)).toBe(false);
    expect(scrub).toEqual(['apiVersion: v1\nkind: Config\n']);
  });
});
