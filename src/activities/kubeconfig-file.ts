import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/activity';
import type { SecretRepository } from '../store/secrets.ts';

/** A kubeconfig secret's content, added to `scrub` first so that no error message can carry it. */
export async function revealKubeconfig(
  secrets: Pick<SecretRepository, 'reveal'>,
  secretName: string,
  scrub: string[],
): Promise<string> {
  const secret = await secrets.reveal(secretName);
  const kubeconfig = secret.data.kubeconfig;
  if (secret.type !== 'kubeconfig' || kubeconfig === undefined) {
    throw ApplicationFailure.create({
      type: 'Invalid',
      message: `secret "${secretName}" is not a kubeconfig secret with a "kubeconfig" key`,
      nonRetryable: true,
    });
  }
  scrub.push(kubeconfig);
  return kubeconfig;
}

const filePrefix = 'icn-kubeconfig-';
const ownedFile = new RegExp(`^${filePrefix}(\\d+)-`);
let sweep: Promise<unknown> | undefined;

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: alive, someone else's.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Removes the kubeconfig files that processes which died mid-step (a killed worker) left in `dir`: the secret must not
 * outlive its step in clear. Each process names its files by its pid and calls this once, before its first file, so
 * that files named by its own pid are a previous process's too (a restarted container often gets the same pid and
 * keeps its /tmp). Returns what was removed.
 */
export async function removeDeadProcessesKubeconfigs(dir: string): Promise<string[]> {
  const stale = (await readdir(dir)).filter((name) => {
    const pid = Number(ownedFile.exec(name)?.[1] ?? Number.NaN);
    return !Number.isNaN(pid) && (pid === process.pid || !alive(pid));
  });
  await Promise.all(stale.map((name) => rm(join(dir, name), { recursive: true, force: true })));
  return stale;
}

/**
 * A kubeconfig secret revealed into a 0600 file for the length of `fn` only (helm and the Kubernetes client read
 * files), removed afterwards. Its content is added to `scrub` first, so that no error message can carry it.
 */
export async function withKubeconfigFile<T>(
  secrets: Pick<SecretRepository, 'reveal'>,
  secretName: string,
  scrub: string[],
  fn: (path: string) => Promise<T>,
): Promise<T> {
  const kubeconfig = await revealKubeconfig(secrets, secretName, scrub);
  // A sweep that fails (an unreadable temporary folder) must not fail the step: the next process tries again.
  sweep ??= removeDeadProcessesKubeconfigs(tmpdir()).catch(() => undefined);
  await sweep;
  const dir = await mkdtemp(join(tmpdir(), `${filePrefix}${process.pid}-`));
  try {
    const file = join(dir, 'kubeconfig');
    await writeFile(file, kubeconfig, { mode: 0o600 });
    return await fn(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
