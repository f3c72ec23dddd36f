/**
 * Kubernetes clients of the sites' clusters, one per kubeconfig, shared by the activities of a worker while they are
 * in use and closed once idle: a client per activity paid a TLS context, a handshake and a kubeconfig file each time
 * (measured at fleet scale: ≈ 10% of the worker's CPU). The kubeconfig stays in this process's memory, as it did for
 * the length of each activity; it is never written to disk.
 */
import { createHash } from 'node:crypto';
import type { KubeconfigSource, KubernetesClient } from '../clients/kubernetes/index.ts';
import type { SecretRepository } from '../store/secrets.ts';
import { revealKubeconfig } from './kubeconfig-file.ts';

interface Entry {
  client: KubernetesClient;
  users: number;
  idleSince: number;
}

export class ClusterClients {
  readonly #make: (source: KubeconfigSource) => KubernetesClient;
  readonly #secrets: Pick<SecretRepository, 'reveal'>;
  readonly #idleMs: number;
  readonly #clients = new Map<string, Entry>();
  #sweeper: NodeJS.Timeout | undefined;

  constructor(
    make: (source: KubeconfigSource) => KubernetesClient,
    secrets: Pick<SecretRepository, 'reveal'>,
    idleMs = 120_000,
  ) {
    this.#make = make;
    this.#secrets = secrets;
    this.#idleMs = idleMs;
  }

  /**
   * The cluster of the kubeconfig secret `secretName` for the length of `fn`. The kubeconfig is added to `scrub`
   * first, so that no error message carries it. A rotated kubeconfig is a new client; the old one closes when idle.
   */
  async with<T>(secretName: string, scrub: string[], fn: (kube: KubernetesClient) => Promise<T>): Promise<T> {
    const kubeconfig = await revealKubeconfig(this.#secrets, secretName, scrub);
    const key = createHash('sha256').update(kubeconfig).digest('hex');
    let entry = this.#clients.get(key);
    if (!entry) {
      entry = { client: this.#make({ kubeconfig }), users: 0, idleSince: 0 };
      this.#clients.set(key, entry);
      this.#sweep();
    }
    entry.users++;
    try {
      return await fn(entry.client);
    } finally {
      entry.users--;
      entry.idleSince = Date.now();
    }
  }

  /** Closes every client (a worker shutting down). */
  close(): void {
    clearInterval(this.#sweeper);
    this.#sweeper = undefined;
    for (const { client } of this.#clients.values()) client.close();
    this.#clients.clear();
  }

  #sweep(): void {
    this.#sweeper ??= setInterval(() => {
      const now = Date.now();
      for (const [key, entry] of this.#clients) {
        if (entry.users === 0 && now - entry.idleSince > this.#idleMs) {
          entry.client.close();
          this.#clients.delete(key);
        }
      }
      if (this.#clients.size === 0) {
        clearInterval(this.#sweeper);
        this.#sweeper = undefined;
      }
    }, this.#idleMs);
    this.#sweeper.unref();
  }
}
