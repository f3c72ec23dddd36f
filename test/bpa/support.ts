/** Shared by the BPA tests: hosts of their own, a BPA (in this process or as a child), lab packages. */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, waitUntil } from '../../deploy/dev/lab/processes.ts';
import type { SshHost, SshHostsInfo } from '../../deploy/dev/lab/ssh-hosts.ts';
import { buildBpaApi, openBpa, parseBpaConfig, type Bpa } from '../../src/bpa/index.ts';
import { BpaClient } from '../../src/clients/bpa/index.ts';
import type { BpaHost, ClusterHost } from '../../src/domain/bpa.ts';
import type { BinaryPackage } from '../../src/domain/software-profile.ts';
import { createLogger } from '../../src/observability/logger.ts';

export const token = 'bpa-test-token-0123456789';
export const keyRef = { name: 'lab-ssh' };
const fixtures = join(import.meta.dirname, '..', 'fixtures', 'packages');

export function bpaEnv(dataDir: string, info: SshHostsInfo, port: number, extra: Record<string, string> = {}) {
  return {
    ICN_BPA_HOST: '127.0.0.1',
    ICN_BPA_PORT: String(port),
    ICN_BPA_TOKENS: `${token}=admin`,
    ICN_BPA_DATA_DIR: dataDir,
    ICN_BPA_KNOWN_HOSTS: info.knownHostsPath,
    ICN_BPA_RETRY_DELAY_MS: '500',
    LOG_LEVEL: 'warn',
    ...extra,
  };
}

export interface TestBpa {
  bpa: Bpa;
  client: BpaClient;
  url: string;
  close(): Promise<void>;
}

/** A BPA in this process, listening on a free port, with the lab's client key stored as secret `lab-ssh`. */
export async function startBpa(
  dataDir: string,
  info: SshHostsInfo,
  extra: Record<string, string> = {},
): Promise<TestBpa> {
  const port = await freePort();
  const config = parseBpaConfig(bpaEnv(dataDir, info, port, extra));
  const logger = createLogger({ level: 'warn', name: 'icn-bpa-test' });
  const bpa = await openBpa(config, logger);
  const app = await buildBpaApi(bpa, logger);
  const url = await app.listen({ host: '127.0.0.1', port });
  const client = new BpaClient({ url, token });
  await client.putSecret(keyRef.name, {
    type: 'ssh-key',
    stringData: { privateKey: readFileSync(info.clientKeyPath, 'utf8') },
  });
  return {
    bpa,
    client,
    url,
    async close() {
      await app.close();
      await bpa.close();
    },
  };
}

/** The BPA as a child process (`node src/bpa/main.ts`), to be killed mid-job. */
export async function spawnBpa(
  dataDir: string,
  info: SshHostsInfo,
  port: number,
  extra: Record<string, string> = {},
): Promise<{ child: ChildProcess; client: BpaClient; log: () => string }> {
  let log = '';
  const child = spawn(process.execPath, ['src/bpa/main.ts'], {
    env: { ...process.env, ...bpaEnv(dataDir, info, port, extra) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr.on('data', (c: Buffer) => (log += c.toString()));
  const client = new BpaClient({ url: `http://127.0.0.1:${port}`, token });
  await waitUntil(
    'the BPA child to listen',
    async () => {
      if (child.exitCode !== null) throw new Error(`the BPA exited ${child.exitCode}: ${log}`);
      return fetch(`http://127.0.0.1:${port}/healthz`).then(
        (r) => r.ok,
        () => false,
      );
    },
    20_000,
  );
  return { child, client, log: () => log };
}

export function labHosts(info: SshHostsInfo): BpaHost[] {
  return info.hosts.map((h) => ({ name: h.name, address: h.host, port: h.port, user: 'root', keyRef }));
}

export interface LabPackage {
  pkg: BinaryPackage;
  file: string;
  size: number;
}

/** A lab package at a version: its fixture script plus a line naming the version, so each version has its digest. */
export function labPackage(
  dir: string,
  fixture: string,
  name: string,
  version: string,
  opts: Partial<BinaryPackage> = {},
): LabPackage {
  mkdirSync(dir, { recursive: true });
  const content = `${readFileSync(join(fixtures, `${fixture}.sh`), 'utf8')}\n# version ${version}\n`;
  const file = join(dir, `${name}-${version}.sh`);
  writeFileSync(file, content);
  const sha256 = createHash('sha256').update(content).digest('hex');
  return {
    file,
    size: Buffer.byteLength(content),
    pkg: {
      name,
      version,
      artifact: { sha256 },
      install: 'sh "$ICN_PACKAGE_FILE" install',
      verify: 'sh "$ICN_PACKAGE_FILE" verify',
      rebootRequired: false,
      ...opts,
    },
  };
}

export async function uploadPackage(client: BpaClient, p: LabPackage): Promise<void> {
  await client.uploadArtifact(
    {
      type: 'binary-package',
      name: p.pkg.name,
      version: p.pkg.version,
      sha256: p.pkg.artifact.sha256,
      size: p.size,
      metadata: {},
    },
    p.file,
  );
}

/** A file the lab package wrote on a host, or undefined. */
export function onHost(root: string, ...path: string[]): string | undefined {
  try {
    return readFileSync(join(root, ...path), 'utf8').trim();
  } catch {
    return undefined;
  }
}

export { waitUntil };

/** A lab host as a kubeadm cluster's host. */
export function clusterHost(h: SshHost, role: ClusterHost['role']): ClusterHost {
  return { name: h.name, address: h.host, port: h.port, user: 'root', role, keyRef };
}

/** The lab kubeadm's calls on a host, in order ("kubeadm init ..."). */
export function kubeadmCalls(h: SshHost): string[] {
  return onHost(h.root, 'var/lib/fixture/kubeadm/calls')?.split('\n') ?? [];
}

/** The lab kubeadm's calls on these hosts in the order they were made, as "<host> kubeadm <args>". */
export function kubeadmTimeline(hosts: SshHost[]): string[] {
  return hosts
    .flatMap((h) => onHost(h.root, 'var/lib/fixture/kubeadm/calls.at')?.split('\n') ?? [])
    .map((line) => {
      const space = line.indexOf(' ');
      return { at: BigInt(line.slice(0, space)), call: line.slice(space + 1) };
    })
    .sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0))
    .map((c) => c.call);
}
