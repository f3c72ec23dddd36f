/**
 * Shared by the BPM and host activity tests: a site in an inventory store (PGlite) whose hosts are real sshd hosts of
 * the test file's own and whose BPA runs in this process. The BPA token and the hosts' SSH key are inventory secrets,
 * as in production: the activities read them there and hand the key to the BPA themselves. Activities run in a
 * MockActivityEnvironment that records every heartbeat and every thrown message, so that tests can check what an
 * attempt would leave in a workflow history.
 */
import { createReadStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Info } from '@temporalio/activity';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import { type SshHost, type SshHostsInfo, startSshHosts, stopSshHosts } from '../../deploy/dev/lab/ssh-hosts.ts';
import type { BpmActivityDeps } from '../../src/activities/bpm.ts';
import { BpaClient } from '../../src/clients/bpa/index.ts';
import type { ArtifactSpec } from '../../src/domain/artifact.ts';
import { SiteSpec } from '../../src/domain/site.ts';
import type { BinaryPackage } from '../../src/domain/software-profile.ts';
import type { Store } from '../../src/store/index.ts';
import { labPackage, type LabPackage, startBpa, type TestBpa, token } from '../bpa/support.ts';
import { openTestStore } from './store.ts';

export const tokenSecret = 'site-bpa-token';
export const sshKeySecret = 'site-ssh-key';

export interface SiteHost {
  name: string;
  role: 'control-plane' | 'worker';
  ssh: SshHost;
}

export interface BpmSite {
  dir: string;
  info: SshHostsInfo;
  bpa: TestBpa;
  store: Store;
  site: string;
  hosts: SiteHost[];
  /** The BPA's bearer token and the hosts' SSH private key, as the inventory holds them. */
  token: string;
  privateKey: string;
  /** Where the BPA keeps an SSH key secret handed to it. */
  bpaSecretFile(name: string): string;
  /** The BPM's dependencies over the store, as createSiteActivities builds them. */
  deps: BpmActivityDeps;
  /** A lab package at a version, stored in the inventory's artifacts (idempotent). */
  centralPackage(fixture: string, name: string, version: string, opts?: Partial<BinaryPackage>): Promise<LabPackage>;
  close(): Promise<void>;
}

export function artifactSpecOf(p: LabPackage): ArtifactSpec {
  return {
    type: 'binary-package',
    name: p.pkg.name,
    version: p.pkg.version,
    sha256: p.pkg.artifact.sha256,
    size: p.size,
    metadata: {},
  };
}

export function siteSpec(
  hosts: SiteHost[],
  opts: { bpaUrl: string; ironicUrl?: string; tokenRef?: string; keyRef?: string },
): SiteSpec {
  return SiteSpec.parse({
    endpoints: {
      ironicUrl: opts.ironicUrl ?? 'http://127.0.0.1:6385',
      bpaUrl: opts.bpaUrl,
      ...(opts.tokenRef !== undefined && { bpaTokenRef: { name: opts.tokenRef } }),
    },
    cluster: { kubernetesVersion: '1.34.2', controlPlaneEndpoint: { host: '10.20.0.10' }, provisioner: 'kubeadm' },
    softwareProfile: { name: 'edge', version: '1.0.0' },
    hosts: hosts.map((h, i) => ({
      name: h.name,
      role: h.role,
      bmc: { address: 'fake-hardware://', credentialsRef: { name: 'bmc-unused' } },
      bootMacAddress: `52:54:00:b9:00:${(i + 1).toString(16).padStart(2, '0')}`,
      ssh: { address: h.ssh.host, port: h.ssh.port, user: 'root', keyRef: { name: opts.keyRef ?? sshKeySecret } },
    })),
  });
}

/**
 * Starts `hostNames.length` sshd hosts of this file's own, a BPA on them, and an inventory with the site: its first
 * host is the control plane, the others workers.
 */
export async function startBpmSite(opts: { prefix: string; site: string; hostNames: string[] }): Promise<BpmSite> {
  const dir = mkdtempSync(join(tmpdir(), `icn-${opts.prefix}-`));
  const info = await startSshHosts({ count: opts.hostNames.length, dir: join(dir, 'lab') });
  const bpa = await startBpa(join(dir, 'bpa'), info);
  const store = await openTestStore('pglite');
  const privateKey = readFileSync(info.clientKeyPath, 'utf8');
  const hosts = opts.hostNames.map((name, i): SiteHost => ({
    name,
    role: i === 0 ? 'control-plane' : 'worker',
    ssh: info.hosts[i] as SshHost,
  }));
  await store.secrets.put({ name: tokenSecret }, 'token', { token });
  await store.secrets.put({ name: sshKeySecret }, 'ssh-key', { privateKey });
  await store.sites.create({ name: opts.site }, siteSpec(hosts, { bpaUrl: bpa.url, tokenRef: tokenSecret }));
  const deps: BpmActivityDeps = {
    sites: store.sites,
    secrets: store.secrets,
    artifacts: {
      get: (sha256) => store.artifacts.get(sha256),
      pathOf: (sha256) => store.artifacts.files.pathOf(sha256),
    },
    // Small chunks: an upload of a lab package takes several requests, each reported as a heartbeat.
    bpa: (url, bearer) => new BpaClient({ url, token: bearer, chunkBytes: 512 }),
    pollIntervalMs: 100,
  };
  const central = join(dir, 'central');
  return {
    dir,
    info,
    bpa,
    store,
    site: opts.site,
    hosts,
    token,
    privateKey,
    bpaSecretFile: (name) => join(dir, 'bpa', 'secrets', name, 'privateKey'),
    deps,
    async centralPackage(fixture, name, version, extra = {}) {
      const p = labPackage(central, fixture, name, version, extra);
      await store.artifacts.upload(artifactSpecOf(p), createReadStream(p.file));
      return p;
    },
    async close() {
      await bpa.close();
      await store.close();
      await stopSshHosts(join(dir, 'lab'));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface Attempt<T> {
  result?: T;
  error?: unknown;
  /** Every heartbeat, copied when sent (activities heartbeat objects they go on changing). */
  heartbeats: unknown[];
}

/** Everything any attempt heartbeated or threw, for checks that no secret ever left an activity. */
export const sent: { heartbeats: unknown[]; messages: string[] } = { heartbeats: [], messages: [] };

/**
 * Runs one activity attempt as a worker would: with its activity id, its workflow and the previous attempt's
 * heartbeat details when given; cancelled once `cancelWhen` resolves.
 */
export async function attempt<T>(
  fn: () => Promise<T>,
  info: { activityId?: string; workflowId?: string; heartbeatDetails?: unknown; cancelWhen?: Promise<unknown> } = {},
): Promise<Attempt<T>> {
  const env = new MockActivityEnvironment(
    {
      activityId: info.activityId ?? 'activity-1',
      ...(info.workflowId !== undefined && {
        workflowExecution: { workflowId: info.workflowId, runId: 'run-1' },
      }),
      heartbeatDetails: info.heartbeatDetails,
      heartbeatTimeoutMs: 30_000,
    } satisfies Partial<Info>,
    // Failed attempts are expected and asserted on: the worker's WARN line for each is noise.
    { logger: new DefaultLogger('ERROR') },
  );
  const heartbeats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => {
    const copy = structuredClone(d);
    heartbeats.push(copy);
    sent.heartbeats.push(copy);
  });
  // The worker lost the activity (shut down, timed out): its context is cancelled mid-step.
  void info.cancelWhen?.then(() => {
    env.cancel();
  });
  try {
    const result = await env.run<[], T, () => Promise<T>>(fn);
    return { result, heartbeats };
  } catch (error) {
    sent.messages.push(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
    return { error, heartbeats };
  }
}

/** Each non-empty line of a PEM key's body: a leak of any of them is a leak. */
export function keyLines(privateKey: string): string[] {
  return privateKey
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0 && !l.startsWith('-----'));
}
