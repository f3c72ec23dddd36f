/**
 * SSH keys by reference. A key lives in `<secretsDir>/<name>/privateKey` (the layout of a Kubernetes Secret mounted
 * as a volume, so the BPA's chart can mount them), or is written there through the API. Keys are read only to open
 * connections: never logged, never returned.
 */
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SshClient } from '../clients/ssh/index.ts';
import { PeerError } from '../clients/errors.ts';
import type { BpaSecret } from '../domain/bpa.ts';
import type { Logger } from '../observability/logger.ts';

export class SecretsFolder {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  /** Writes the secret; returns whether anything changed (the BPM hands the same key over before every job). */
  async put(name: string, secret: BpaSecret): Promise<boolean> {
    const folder = join(this.dir, name);
    await mkdir(folder, { recursive: true, mode: 0o700 });
    await chmod(folder, 0o700);
    let changed = false;
    for (const [key, value] of Object.entries(secret.stringData) as [string, string | undefined][]) {
      if (value === undefined) continue;
      const current = await readFile(join(folder, key), 'utf8').catch(() => undefined);
      if (current === value) continue;
      const tmp = join(folder, `.${key}.tmp`);
      await writeFile(tmp, value, { mode: 0o600 });
      await rename(tmp, join(folder, key));
      changed = true;
    }
    return changed;
  }

  async sshKey(name: string): Promise<{ privateKey: Buffer; passphrase?: string }> {
    let privateKey: Buffer;
    try {
      privateKey = await readFile(join(this.dir, name, 'privateKey'));
    } catch {
      throw new PeerError('ssh', `the SSH key secret "${name}" is not known to this BPA`, {
        retryable: false,
        reason: 'SecretNotFound',
      });
    }
    const passphrase = await readFile(join(this.dir, name, 'passphrase'), 'utf8').catch(() => undefined);
    return { privateKey, ...(passphrase !== undefined && { passphrase }) };
  }
}

export interface SshPoolOptions {
  knownHostsPath?: string;
  maxConnections: number;
  logger: Pick<Logger, 'debug' | 'warn'>;
}

/** One SshClient (and so one connection pool) per key: the keys of a site's hosts are usually one or a few. */
export class SshPool {
  readonly #secrets: SecretsFolder;
  readonly #opts: SshPoolOptions;
  readonly #clients = new Map<string, Promise<SshClient>>();

  constructor(secrets: SecretsFolder, opts: SshPoolOptions) {
    this.#secrets = secrets;
    this.#opts = opts;
  }

  async client(keyRef: string, user: string): Promise<SshClient> {
    const id = `${keyRef}\u0000${user}`;
    let client = this.#clients.get(id);
    if (!client) {
      client = this.#secrets.sshKey(keyRef).then(
        ({ privateKey, passphrase }) =>
          new SshClient({
            user,
            privateKey,
            ...(passphrase !== undefined && { passphrase }),
            ...(this.#opts.knownHostsPath !== undefined && { knownHostsPath: this.#opts.knownHostsPath }),
            // One command or upload at a time per host: the BPA serialises its work on a host anyway.
            perHostLimit: 2,
            maxConnections: this.#opts.maxConnections,
            idleTimeoutMs: 15_000,
            keepaliveIntervalMs: 5_000,
            logger: this.#opts.logger,
          }),
      );
      this.#clients.set(id, client);
      client.catch(() => this.#clients.delete(id));
    }
    return client;
  }

  /** A key was replaced: connections made with the old one close, the next use reads the new one. */
  async forget(keyRef: string): Promise<void> {
    for (const [id, client] of [...this.#clients]) {
      if (!id.startsWith(`${keyRef}\u0000`)) continue;
      this.#clients.delete(id);
      await (await client.catch(() => undefined))?.close();
    }
  }

  async close(): Promise<void> {
    for (const client of this.#clients.values()) await (await client.catch(() => undefined))?.close();
    this.#clients.clear();
  }
}
