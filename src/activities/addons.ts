/**
 * KPM: a profile's Helm charts in a site's application cluster. The cluster's kubeconfig is revealed from the
 * secret store into a 0600 file for the one helm call and removed after; charts come from the artifact store by
 * digest. An install is idempotent across retries: each revision's description records the chart digest and a hash
 * of the values, so an attempt that finds its own revision deployed returns it instead of adding another.
 */
import { createHash } from 'node:crypto';
import { CancelledFailure, Context } from '@temporalio/activity';
import { PeerError } from '../clients/errors.ts';
import type { HelmClient, HistoryEntry, ReleaseStatus } from '../clients/helm/index.ts';
import { valueStrings } from '../clients/helm/index.ts';
import type { ContainerPackage } from '../domain/software-profile.ts';
import type { SecretRepository } from '../store/secrets.ts';
import { toActivityFailure } from './errors.ts';
import { withKubeconfigFile } from './kubeconfig-file.ts';

export interface AddonActivityDeps {
  /** A Helm client for a kubeconfig file; the file exists until the activity closes the client. */
  helm: (kubeconfigPath: string) => HelmClient;
  secrets: Pick<SecretRepository, 'reveal'>;
  /** Where the artifact store keeps a chart's content (`store.artifacts.files.pathOf`). */
  chartPath: (sha256: string) => string;
  /** Helm's --timeout for each install, upgrade, rollback or uninstall (default 300 s). */
  timeoutSeconds?: number;
  heartbeatIntervalMs?: number;
}

export interface ChartTarget {
  site: string;
  /** The inventory secret (type kubeconfig) of the site's application cluster. */
  kubeconfigSecret: string;
  chart: ContainerPackage;
}

/** What a release looks like to a workflow: enough to record and to roll back to. */
export interface ChartRelease {
  release: string;
  namespace: string;
  revision: number;
  status: string;
  chartVersion: string;
}

/** The release of a chart: its name, so that a profile's chart keeps its release across versions. */
export const releaseName = (chart: ContainerPackage): string => chart.name;

/** Stable across key order, so that the same values always give the same hash. */
function canonical(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonical(v)}`).join(',')}}`;
  }
  // undefined (a value JSON has no word for) would stringify to undefined.
  return value === undefined ? 'null' : JSON.stringify(value);
}

/** The mark an install leaves in its revision's description; no value appears in it, only a hash. */
export function installMark(chart: ContainerPackage): string {
  const values = createHash('sha256').update(canonical(chart.values)).digest('hex').slice(0, 16);
  return `icn ${chart.name}@${chart.version} chart=${chart.chart.sha256.slice(0, 16)} values=${values}`;
}

const summary = (s: ReleaseStatus): ChartRelease => ({
  release: s.name,
  namespace: s.namespace,
  revision: s.revision,
  status: s.status,
  chartVersion: s.chartVersion,
});

async function lastRevision(helm: HelmClient, release: string, namespace: string): Promise<HistoryEntry | undefined> {
  try {
    return (await helm.history(release, namespace, 1))[0];
  } catch (err) {
    if (err instanceof PeerError && err.reason === 'NotFound') return undefined;
    throw err;
  }
}

export function createAddonActivities(deps: AddonActivityDeps) {
  const timeoutSeconds = deps.timeoutSeconds ?? 300;
  const heartbeatIntervalMs = deps.heartbeatIntervalMs ?? 5_000;

  /** Runs `fn` with a Helm client on the site's application cluster, heartbeating while helm works. */
  async function onCluster<T>(
    target: Pick<ChartTarget, 'site' | 'kubeconfigSecret'>,
    fn: (helm: HelmClient, signal: AbortSignal) => Promise<T>,
    secrets: string[] = [],
  ): Promise<T> {
    const ctx = Context.current();
    let helm: HelmClient | undefined;
    const timer = setInterval(() => {
      ctx.heartbeat();
    }, heartbeatIntervalMs);
    try {
      return await withKubeconfigFile(deps.secrets, target.kubeconfigSecret, secrets, async (file) => {
        helm = deps.helm(file);
        return fn(helm, ctx.cancellationSignal);
      });
    } catch (err) {
      if (ctx.cancellationSignal.aborted) throw new CancelledFailure('activity cancelled');
      throw toActivityFailure(err, { secrets });
    } finally {
      clearInterval(timer);
      helm?.close();
    }
  }

  return {
    /** `helm upgrade --install`, atomic and waiting for the release's resources; returns the release's revision. */
    installChart: async (input: ChartTarget): Promise<{ revision: number }> => {
      const { chart } = input;
      const release = releaseName(chart);
      const mark = installMark(chart);
      return onCluster(
        input,
        async (helm, signal) => {
          const last = await lastRevision(helm, release, chart.namespace);
          // A retry after a lost response: this very install is already the deployed revision.
          if (last?.status === 'deployed' && last.description === mark) return { revision: last.revision };
          const status = await helm.installOrUpgrade({
            release,
            namespace: chart.namespace,
            chart: deps.chartPath(chart.chart.sha256),
            values: chart.values,
            atomic: true,
            wait: true,
            timeoutSeconds,
            description: mark,
            signal,
          });
          return { revision: status.revision };
        },
        [...valueStrings(chart.values)],
      );
    },

    /** Compensation: the release removed; a release already gone is success. */
    uninstallChart: async (input: ChartTarget): Promise<void> => {
      await onCluster(input, async (helm, signal) => {
        await helm.uninstall({
          release: releaseName(input.chart),
          namespace: input.chart.namespace,
          wait: true,
          timeoutSeconds,
          signal,
        });
      });
    },

    /** Back to `revision` (a new revision with its chart and values); returns the new revision. */
    rollbackChart: async (input: ChartTarget & { revision: number }): Promise<{ revision: number }> => {
      return onCluster(input, async (helm, signal) => {
        const release = releaseName(input.chart);
        // Helm's own description of a rollback: a retry that finds it deployed does not roll back twice.
        const last = await lastRevision(helm, release, input.chart.namespace);
        if (last?.status === 'deployed' && last.description === `Rollback to ${input.revision}`) {
          return { revision: last.revision };
        }
        const status = await helm.rollback({
          release,
          namespace: input.chart.namespace,
          revision: input.revision,
          wait: true,
          timeoutSeconds,
          signal,
        });
        return { revision: status.revision };
      });
    },

    /** The release as it is now, or null when the chart is not installed. */
    chartStatus: async (input: ChartTarget): Promise<ChartRelease | null> => {
      return onCluster(input, async (helm) => {
        const status = await helm.findRelease(releaseName(input.chart), input.chart.namespace);
        return status === undefined ? null : summary(status);
      });
    },
  };
}

export type AddonActivities = ReturnType<typeof createAddonActivities>;
