/**
 * BPM (Binary Provisioning Manager) activities: the global controller's side of a site's BPA. They run on the site's
 * task queue. Long waits are single heartbeating activities that resume from their heartbeat details: a retried
 * upload goes on from the BPA's offset, a retried wait goes back to the job it started instead of starting another.
 */
import { createHash } from 'node:crypto';
import { ApplicationFailure, Context } from '@temporalio/activity';
import { PeerError } from '../clients/errors.ts';
import type { BpaClient } from '../clients/bpa/index.ts';
import type { ArtifactSpec } from '../domain/artifact.ts';
import type { ClusterSpec, ClusterStatus, InstallJob, InstallJobSpec, JobSummary } from '../domain/bpa.ts';

export interface BpmActivityDeps {
  /** The BPA client of a site (its URL and token come from the site's endpoints and secrets). */
  bpaFor: (site: string) => BpaClient | Promise<BpaClient>;
  /** Where the central artifact store keeps an artifact's content. */
  artifactPath: (sha256: string) => string;
  /** Keeps a fetched kubeconfig as a Secret and returns its name; without it the kubeconfig itself is returned. */
  saveKubeconfig?: (site: string, cluster: string, kubeconfig: string) => Promise<string>;
  pollIntervalMs?: number;
}

export interface DistributeInput {
  site: string;
  /** What the site's profile needs; only what its BPA lacks is uploaded. */
  artifacts: ArtifactSpec[];
}

export interface DistributeResult {
  uploaded: string[];
  present: string[];
}

export interface InstallJobInput {
  site: string;
  /** `id` makes the start idempotent; the activity derives one from its workflow and activity ids when absent. */
  spec: InstallJobSpec;
}

export interface InstallJobResult {
  jobId: string;
  state: InstallJob['state'];
  summary: JobSummary;
  /** Only the failed hosts: a 1,000-host result stays small in the workflow's history. */
  failedHosts: { host: string; error: string }[];
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

function lastHeartbeat(): JobHeartbeat | undefined {
  return Context.current().info.heartbeatDetails as JobHeartbeat | undefined;
}

/** A PeerError becomes a failure Temporal retries or not as the peer said. */
function asFailure(err: unknown): unknown {
  if (err instanceof PeerError) {
    return ApplicationFailure.create({
      message: err.message,
      type: `${err.peer}.${err.reason}`,
      nonRetryable: !err.retryable,
      cause: err,
    });
  }
  return err;
}

export function createBpmActivities(deps: BpmActivityDeps | undefined) {
  const pollMs = deps?.pollIntervalMs ?? 2000;
  const configured = (): BpmActivityDeps => {
    if (!deps) {
      throw ApplicationFailure.nonRetryable('this worker has no BPM configured (BPA clients)', 'bpm.NotConfigured');
    }
    return deps;
  };

  async function waitForJob(bpa: BpaClient, jobId: string): Promise<InstallJob> {
    for (;;) {
      const job = await bpa.getJob(jobId);
      if (!job) throw ApplicationFailure.nonRetryable(`the BPA lost job ${jobId}`, 'bpa.JobNotFound');
      Context.current().heartbeat({ jobId, summary: job.summary } satisfies JobHeartbeat);
      if (job.state === 'succeeded' || job.state === 'failed') return job;
      await Context.current().sleep(pollMs);
    }
  }

  return {
    /** Uploads to the site's BPA the artifacts it lacks; a broken upload resumes where the BPA stands. */
    async distributeArtifacts(input: DistributeInput): Promise<DistributeResult> {
      const { bpaFor, artifactPath } = configured();
      try {
        const bpa = await bpaFor(input.site);
        const held = new Set((await bpa.listArtifacts()).map((a) => a.sha256));
        const result: DistributeResult = { uploaded: [], present: [] };
        for (const artifact of input.artifacts) {
          if (held.has(artifact.sha256)) {
            result.present.push(artifact.sha256);
            continue;
          }
          Context.current().heartbeat({ sha256: artifact.sha256, offset: 0 });
          await bpa.uploadArtifact(artifact, artifactPath(artifact.sha256), {
            onProgress: (offset) => {
              Context.current().heartbeat({ sha256: artifact.sha256, offset });
            },
          });
          held.add(artifact.sha256);
          result.uploaded.push(artifact.sha256);
        }
        return result;
      } catch (err) {
        throw asFailure(err);
      }
    },

    /** Starts an install (or rollback) job on the site's BPA, or finds the one it started, and waits for its end. */
    async runInstallJob(input: InstallJobInput): Promise<InstallJobResult> {
      const { bpaFor } = configured();
      try {
        const bpa = await bpaFor(input.site);
        const info = Context.current().info;
        let jobId = lastHeartbeat()?.jobId;
        if (jobId === undefined) {
          jobId =
            input.spec.id ?? derivedJobId(`${info.workflowExecution?.workflowId ?? 'activity'}-${info.activityId}`);
          await bpa.startJob({ ...input.spec, id: jobId });
          Context.current().heartbeat({ jobId } satisfies JobHeartbeat);
        }
        const job = await waitForJob(bpa, jobId);
        return {
          jobId,
          state: job.state,
          summary: job.summary,
          failedHosts: job.hosts
            .filter((h) => h.state === 'failed')
            .map((h) => ({ host: h.host, error: h.error ?? job.error ?? 'failed' })),
        };
      } catch (err) {
        throw asFailure(err);
      }
    },

    /** kubeadm bring-up through the BPA: starts it (once per cluster name) and waits for it. */
    async bringUpCluster(input: { site: string; spec: ClusterSpec }): Promise<ClusterStatus> {
      const { bpaFor } = configured();
      try {
        const bpa = await bpaFor(input.site);
        const status = await bpa.startCluster(input.spec);
        await waitForJob(bpa, status.jobId);
        const done = await bpa.getCluster(input.spec.name);
        if (!done) throw ApplicationFailure.nonRetryable(`the BPA lost cluster ${input.spec.name}`, 'bpa.NotFound');
        if (done.state === 'failed') {
          throw ApplicationFailure.nonRetryable(
            `bringing up ${input.spec.name} failed: ${done.error ?? 'see the BPA'}`,
            'bpa.ClusterFailed',
          );
        }
        return done;
      } catch (err) {
        throw asFailure(err);
      }
    },

    /**
     * The cluster's admin kubeconfig: kept as a Secret (its name is returned) when the worker can, so that it does
     * not sit in the workflow's history even encrypted.
     */
    async fetchKubeconfig(input: {
      site: string;
      cluster: string;
    }): Promise<{ secretName?: string; kubeconfig?: string }> {
      const { bpaFor, saveKubeconfig } = configured();
      try {
        const bpa = await bpaFor(input.site);
        const kubeconfig = await bpa.kubeconfig(input.cluster);
        if (kubeconfig === undefined) {
          throw ApplicationFailure.retryable(`the BPA has no kubeconfig for ${input.cluster} yet`, 'bpa.NotReady');
        }
        if (saveKubeconfig) return { secretName: await saveKubeconfig(input.site, input.cluster, kubeconfig) };
        return { kubeconfig };
      } catch (err) {
        throw asFailure(err);
      }
    },
  };
}
