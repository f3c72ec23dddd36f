/**
 * Host key checking from an OpenSSH known_hosts file: plain entries (`host`, `[host]:port`, comma-separated), not
 * hashed ones nor wildcard patterns. Reread when the file changes, since lab hosts are added while a pool lives.
 */
import { readFileSync, statSync } from 'node:fs';

export class KnownHosts {
  readonly path: string;
  #mtimeMs = -1;
  #keys = new Map<string, Set<string>>();

  constructor(path: string) {
    this.path = path;
  }

  /** Whether `key` (the raw key blob the host presented) is listed for host:port. */
  accepts(host: string, port: number, key: Buffer): boolean {
    this.#reload();
    const name = port === 22 ? host : `[${host}]:${port}`;
    return this.#keys.get(name)?.has(key.toString('base64')) ?? false;
  }

  #reload(): void {
    const mtimeMs = statSync(this.path).mtimeMs;
    if (mtimeMs === this.#mtimeMs) return;
    const keys = new Map<string, Set<string>>();
    for (const line of readFileSync(this.path, 'utf8').split('\n')) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 3 || fields[0]?.startsWith('#') || fields[0]?.startsWith('@')) continue;
      const [names = '', , blob = ''] = fields;
      for (const name of names.split(',')) keys.set(name, (keys.get(name) ?? new Set()).add(blob));
    }
    this.#keys = keys;
    this.#mtimeMs = mtimeMs;
  }
}
