import { mkdtemp, rm, writeFile } from 'node:fs/promises';
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
  const dir = await mkdtemp(join(tmpdir(), 'icn-kubeconfig-'));
  try {
    const file = join(dir, 'kubeconfig');
    await writeFile(file, kubeconfig, { mode: 0o600 });
    return await fn(file);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
