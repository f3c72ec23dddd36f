/**
 * BPM (Binary Provisioning Manager) activities: the global controller's side of a site's BPA. The site's inventory
 * says where its BPA is, which token it takes and how each host is reached; the hosts' SSH keys are handed to the BPA
 * (write-only) before a job names them, so that no key ever travels in a workflow's input. Long waits are single
 * heartbeating activities that resume from their heartbeat details: a retried upload goes on from the BPA's offset,
 * a retried wait goes back to the job it started instead of starting another.
 */
import { createHash } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { BpaClient } from '../clients/bpa/index.ts';
import type { ArtifactSpec } from '../domain/artifact.ts';
import type { BpaHost, ClusterHost, InstallJob, JobSummary } from '../domain/bpa.ts';
import { kubeconfigSecretName } from '../domain/plan.ts';
import type { SiteSpec } from '../domain/site.ts';
import type { BinaryPackage } from '../domain/software-profile.ts';
import type { PackageActivities } from '../workflows/site-activities.ts';
import { toActivityFailure } from './errors.ts';

export interface BpmActivityDeps {
  /** The site's spec (endpoints, hosts), read when the activity runs: a host added since is found. */
  sites: { get(name: string): Promise<{ spec: SiteSpec }> };
  secrets: {
    reveal(name: string): Promise<{ type: string; data: Record<string, string> }>;
    put(
      meta: { name: string; labels?: Record<string, string> },
      type: 'kubeconfig',
      data: Record<string, string>,
    ): Promise<unknown>;
  };
  /**
   * An artifact's metadata and where the central store keeps its content; `held`, when given, the bytes of an
   * artifact small enough to be kept in memory (undefined for a larger one), read once for every site it goes to.
   */
  artifacts: {
    get(sha256: string): Promise<ArtifactSpec>;
    pathOf(sha256: string): string;
    held?(sha256: string): Promise<Uint8Array | undefined>;
  };
  /** A BPA client for a URL and bearer token (`new BpaClient`); tests hand in the same. */
  bpa: (url: string, token: string) => BpaClient;
  pollIntervalMs?: number;
  /**
   * How long an upload runs before it heartbeats (default a third of the heartbeat timeout). The SDK sends an
   * attempt's first heartbeat at once: a site's usual upload takes a second or two, and a heartbeat at its start
   * was a server write per site started (10,000 at once when a fleet starts) that told nothing.
   */
  heartbeatGraceMs?: number;
}

interface JobHeartbeat {
  jobId: string;
  summary?: JobSummary;
}

/** A job id from the workflow's: the BPA accepts letters, digits, ".", "_" and "-", up to 128 characters. */
export function derivedJobId(raw: string): string {
  const safe = raw.replace(/[^A-Za-z0-9._-]/g, '-').replace(/^[^A-Za-z0-9]+/, '');
  if (safe.length > 0 && safe.length <= 128) return safe;
  return `job-${createHash('sha256').update(raw).digest('hex').slice(0, 40)}`;
}

/** The same job id on every attempt of one activity (workflow id + activity id), so a retried start joins it. */
export function activityJobId(suffix = ''): string {
  const info = Context.current().info;
  return derivedJobId(`${info.workflowExecution?.workflowId ?? 'activity'}-${info.activityId}${suffix}`);
}

const siteLabel = 'icn.akraino.org/site';

/**
 * How often a long step beats while nothing happens: a third of the activity's heartbeat timeout (a missed beat or two
 * is not a dead worker). Every heartbeat is encoded and encrypted when made, even those the SDK then holds back, so
 * beating more often only costs CPU (measured: with 8,000 hosts in flight, 10 s keep-alives kept the worker's main
 * thread busy).
 */
export function keepAliveMs(): number {
  return Math.max((Context.current().info.heartbeatTimeoutMs ?? 30_000) / 3, 1000);
}

function nonRetryable(type: string, message: string): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: true });
}

/** How activities reach a site's BPA: its client, its hosts, its jobs. Shared by the BPM and host activities. */
export function bpaAccess(deps: BpmActivityDeps) {
  const pollMs = deps.pollIntervalMs ?? 2000;

  /**
   * The site's BPA, with the token its inventory references; the token itself stays in this process. `known` is the
   * site's spec when the caller has just read it.
   */
  async function siteBpa(
    site: string,
    bpaUrl: string,
    known?: SiteSpec,
  ): Promise<{ bpa: BpaClient; spec: SiteSpec; token: string }> {
    const spec = known ?? (await deps.sites.get(site)).spec;
    const ref = spec.endpoints.bpaTokenRef;
    if (!ref) throw nonRetryable('Invalid', `site "${site}" has no endpoints.bpaTokenRef: the BPM cannot call its BPA`);
    const secret = await deps.secrets.reveal(ref.name);
    const token = secret.data.token;
    if (secret.type !== 'token' || token === undefined) {
      throw nonRetryable('Invalid', `site "${site}": secret "${ref.name}" is not a token secret with a "token" key`);
    }
    return { bpa: deps.bpa(bpaUrl, token), spec, token };
  }

  /**
   * The named hosts as the BPA reaches them, their SSH keys handed to it first (PUT is idempotent): a key rotated
   * in the inventory reaches the BPA on the next operation. The keys are read while `bpa` may still be in the making
   * (its token read): a round trip fewer before a host's job.
   */
  async function bpaHosts(
    site: string,
    spec: SiteSpec,
    bpa: BpaClient | Promise<BpaClient>,
    names: string[],
  ): Promise<ClusterHost[]> {
    const hosts = names.map((name) => {
      const host = spec.hosts.find((h) => h.name === name);
      if (!host) throw nonRetryable('Invalid', `site "${site}" has no host "${name}"`);
      return host;
    });
    const revealed: string[] = [];
    const revealKey = async (keyName: string) => {
      const key = await deps.secrets.reveal(keyName);
      const { privateKey, passphrase } = key.data;
      if (key.type !== 'ssh-key' || privateKey === undefined) {
        throw nonRetryable('Invalid', `site "${site}": secret "${keyName}" is not an ssh-key secret with a privateKey`);
      }
      revealed.push(privateKey, ...(passphrase === undefined ? [] : [passphrase]));
      return { keyName, privateKey, passphrase };
    };
    try {
      const [client, ...keys] = await Promise.all([
        bpa,
        ...[...new Set(hosts.map((h) => h.ssh.keyRef.name))].map(revealKey),
      ]);
      await Promise.all(
        keys.map(({ keyName, privateKey, passphrase }) =>
          client.putSecret(keyName, {
            type: 'ssh-key',
            stringData: { privateKey, ...(passphrase !== undefined && { passphrase }) },
          }),
        ),
      );
    } catch (err) {
      throw toActivityFailure(err, { secrets: revealed });
    }
    return hosts.map((h): ClusterHost => ({
      name: h.name,
      address: h.ssh.address,
      port: h.ssh.port,
      user: h.ssh.user,
      keyRef: { name: h.ssh.keyRef.name },
      role: h.role,
    }));
  }

  /**
   * Waits for the job's end as the BPA pushes it (its event stream: one request for the whole job instead of a poll
   * every few seconds, and the end noticed at once, the ended job with it). A stream that breaks (the BPA restarted,
   * a proxy cut it) falls back to one look at the job and a new stream after the poll interval. Heartbeats go on
   * while the job is quiet.
   */
  async function waitForJob(
    bpa: BpaClient,
    jobId: string,
    beat: (job: InstallJob) => void = (job) => {
      Context.current().heartbeat({ jobId, summary: job.summary } satisfies JobHeartbeat);
    },
    started?: InstallJob,
  ): Promise<InstallJob> {
    const ctx = Context.current();
    let job = started ?? (await bpa.getJob(jobId));
    for (;;) {
      if (!job) throw nonRetryable('bpa.JobNotFound', `the BPA lost job ${jobId}`);
      beat(job);
      if (job.state === 'succeeded' || job.state === 'failed') return job;
      const last = job;
      const timer = setInterval(() => {
        beat(last);
      }, keepAliveMs());
      let ended: InstallJob | undefined;
      try {
        for await (const event of bpa.events(jobId, ctx.cancellationSignal)) {
          if (event.type === 'done') {
            ended = event.job;
            break;
          }
        }
      } catch (err) {
        if (ctx.cancellationSignal.aborted) throw err;
        await ctx.sleep(pollMs);
      } finally {
        clearInterval(timer);
      }
      job = ended ?? (await bpa.getJob(jobId));
    }
  }

  /**
   * Starts the job `jobId` (the BPA returns the one an earlier attempt started: the id is derived from the activity,
   * the same on every attempt) and waits for its end, heartbeating through `beat` (the job's id and summary by
   * default; an activity that resumes from other heartbeat details passes its own).
   */
  async function runJob(
    bpa: BpaClient,
    jobId: string,
    spec: { action: 'install' | 'rollback'; hosts: BpaHost[]; packages: BinaryPackage[] },
    beat?: (job: InstallJob) => void,
  ): Promise<InstallJob> {
    // A cluster host's role is not part of an install job (the BPA refuses unknown fields).
    const hosts = spec.hosts.map(({ name, address, port, user, keyRef }) => ({ name, address, port, user, keyRef }));
    const started = await bpa.startJob({ id: jobId, ...spec, hosts });
    return waitForJob(bpa, jobId, beat, started);
  }

  function jobFailure(site: string, what: string, job: InstallJob): ApplicationFailure {
    const failed = job.hosts.filter((h) => h.state === 'failed');
    const detail = failed.map((h) => `${h.host}: ${h.error ?? 'failed'}`).join('; ');
    return ApplicationFailure.create({
      type: 'PackagesFailed',
      message: `${what} on site "${site}" failed on ${failed.length} host(s): ${detail || (job.error ?? 'see the BPA')}`,
      nonRetryable: true,
      details: [{ jobId: job.id, failedHosts: failed.map((h) => h.host) }],
    });
  }

  /** Each host's versions after a job: what it installed or already had. */
  function versionsOf(job: InstallJob): Record<string, Record<string, string>> {
    return Object.fromEntries(
      job.hosts.map((h) => [
        h.host,
        Object.fromEntries(h.packages.filter((p) => p.outcome !== 'failed').map((p) => [p.name, p.version])),
      ]),
    );
  }

  async function waitClusterGone(bpa: BpaClient, name: string): Promise<void> {
    const ctx = Context.current();
    for (;;) {
      const cluster = await bpa.getCluster(name);
      if (!cluster) return;
      ctx.heartbeat({ resetting: name, state: cluster.state });
      if (cluster.state === 'failed') {
        throw nonRetryable('bpa.ResetFailed', `resetting cluster ${name} failed: ${cluster.error ?? 'see the BPA'}`);
      }
      await ctx.sleep(pollMs);
    }
  }

  return { siteBpa, bpaHosts, waitForJob, runJob, jobFailure, versionsOf, waitClusterGone, pollMs };
}

export type BpaAccess = ReturnType<typeof bpaAccess>;

export function createBpmActivities(deps: BpmActivityDeps) {
  const { siteBpa, bpaHosts, waitForJob, runJob, jobFailure, versionsOf, waitClusterGone } = bpaAccess(deps);
  const activities: PackageActivities = {
    async distributeArtifacts(input) {
      try {
        const ctx = Context.current();
        const beatFrom = Date.now() + (deps.heartbeatGraceMs ?? keepAliveMs());
        // A local activity (a small upload within a workflow task) has no heartbeat to send.
        const beat = (progress: { sha256: string; offset: number }): void => {
          if (!ctx.info.isLocal && Date.now() >= beatFrom) ctx.heartbeat(progress);
        };
        const { bpa } = await siteBpa(input.site, input.bpaUrl);
        const held = new Set((await bpa.listArtifacts()).map((a) => a.sha256));
        let uploaded = 0;
        for (const sha256 of new Set(input.sha256s)) {
          if (held.has(sha256)) continue;
          const spec = await deps.artifacts.get(sha256);
          beat({ sha256, offset: 0 });
          const source = (await deps.artifacts.held?.(sha256)) ?? deps.artifacts.pathOf(sha256);
          await bpa.uploadArtifact(spec, source, {
            onProgress: (offset) => {
              beat({ sha256, offset });
            },
          });
          uploaded++;
        }
        return { uploaded };
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    async installPackages(input) {
      try {
        const { bpa, spec } = await siteBpa(input.site, input.bpaUrl);
        const hosts = await bpaHosts(input.site, spec, bpa, input.hosts);
        const job = await runJob(bpa, activityJobId(), { action: 'install', hosts, packages: input.packages });
        if (job.state === 'failed') throw jobFailure(input.site, 'installing packages', job);
        return versionsOf(job);
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    async rollbackPackages(input) {
      try {
        if (input.packages.length === 0) return;
        const { bpa, spec } = await siteBpa(input.site, input.bpaUrl);
        const hosts = await bpaHosts(input.site, spec, bpa, input.hosts);
        const job = await runJob(bpa, activityJobId(), { action: 'rollback', hosts, packages: input.packages });
        if (job.state === 'failed') throw jobFailure(input.site, 'rolling packages back', job);
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    async bringUpCluster(input) {
      try {
        const { bpa, spec } = await siteBpa(input.site, input.bpaUrl);
        const hosts = await bpaHosts(input.site, spec, bpa, input.hosts ?? spec.hosts.map((h) => h.name));
        const status = await bpa.startCluster({
          name: input.site,
          kubernetesVersion: input.kubernetesVersion,
          controlPlaneEndpoint: spec.cluster.controlPlaneEndpoint,
          podCidr: spec.cluster.podCidr,
          serviceCidr: spec.cluster.serviceCidr,
          hosts,
          packages: input.packages,
        });
        const job = await waitForJob(bpa, status.jobId);
        const done = await bpa.getCluster(input.site);
        if (job.state === 'failed' || done?.state === 'failed') {
          throw nonRetryable(
            'bpa.ClusterFailed',
            `bringing up the cluster of site "${input.site}" failed: ${done?.error ?? job.error ?? 'see the BPA'}`,
          );
        }
        const kubeconfig = await bpa.kubeconfig(input.site);
        if (kubeconfig === undefined) {
          throw ApplicationFailure.retryable(`the BPA has no kubeconfig for ${input.site} yet`, 'bpa.NotReady');
        }
        const name = kubeconfigSecretName(input.site);
        await deps.secrets.put({ name, labels: { [siteLabel]: input.site } }, 'kubeconfig', { kubeconfig });
        return name;
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    async upgradeKubeadmCluster(input) {
      try {
        const { bpa } = await siteBpa(input.site, input.bpaUrl);
        const status = await bpa.upgradeCluster(input.site, {
          kubernetesVersion: input.kubernetesVersion,
          ...(input.packages.length > 0 && { packages: input.packages }),
        });
        const job = await waitForJob(bpa, status.jobId);
        if (job.state === 'failed') {
          throw nonRetryable(
            'bpa.UpgradeFailed',
            `upgrading the cluster of site "${input.site}" to ${input.kubernetesVersion} failed: ${job.error ?? 'see the BPA'}`,
          );
        }
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    async resetCluster(input) {
      try {
        const { bpa } = await siteBpa(input.site, input.bpaUrl);
        if (await bpa.resetCluster(input.site)) await waitClusterGone(bpa, input.site);
      } catch (err) {
        throw toActivityFailure(err);
      }
    },
  };
  return activities;
}
