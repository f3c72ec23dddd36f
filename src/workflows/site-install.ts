import {
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  proxyActivities,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { SiteInstallInput } from '../domain/operations.ts';
import { ironicNodeName, type SitePlan } from '../domain/plan.ts';
import { profileArtifacts } from '../domain/software-profile.ts';
import { ProgressTracker } from './progress.ts';
import { Saga } from './saga.ts';
import type { InventoryActivities, SiteActivities } from './site-activities.ts';

export interface SiteInstallResult {
  site: string;
  profile: { name: string; version: string };
  hosts: string[];
  kubeconfigSecret: string;
  charts: Record<string, number>;
}

const retry: ActivityOptions['retry'] = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '30 seconds',
};

const inventory = proxyActivities<InventoryActivities>({ startToCloseTimeout: '1 minute', retry });

/**
 * Activities that reach inside the site run on the site's task queue when a worker runs there (agent mode `local`),
 * otherwise on this workflow's own queue, served by the global worker.
 */
export function siteActivities(plan: SitePlan) {
  const taskQueue = plan.spec.agentMode === 'local' ? `site.${plan.site}` : workflowInfo().taskQueue;
  return {
    quick: proxyActivities<SiteActivities>({ taskQueue, startToCloseTimeout: '5 minutes', retry }),
    // Long steps heartbeat; a worker that dies is noticed within a minute and the step resumes elsewhere.
    long: proxyActivities<SiteActivities>({
      taskQueue,
      startToCloseTimeout: '2 hours',
      heartbeatTimeout: '1 minute',
      retry,
    }),
  };
}

/** Where the site's Ironic fetches an OS image: the site's own BPA, which holds the artifact after distribution. */
export function osImageUrl(plan: SitePlan, sha256: string): string {
  return `${plan.spec.endpoints.bpaUrl.replace(/\/$/, '')}/v1/artifacts/${sha256}/content`;
}

/**
 * Install a site from bare metal to a working cluster with its add-ons: distribute artifacts → provision hosts →
 * create the cluster → install packages → fetch the kubeconfig → install charts → Ready. A failure compensates in
 * reverse order, or, with keepOnFailure, leaves everything in place and says where it stopped.
 */
export async function siteInstall(input: SiteInstallInput): Promise<SiteInstallResult> {
  const progress = new ProgressTracker();
  const saga = new Saga();
  progress.step('loading the site plan');
  const plan = await inventory.loadSitePlan(input.site);
  const { quick, long } = siteActivities(plan);
  const { spec, profile } = plan;
  const { ironicUrl, bpaUrl } = spec.endpoints;
  const hostNames = spec.hosts.map((h) => h.name);
  const usesClusterApi = spec.cluster.provisioner === 'cluster-api';
  await inventory.recordSiteStatus({
    site: plan.site,
    status: { phase: 'Installing', operation: { workflowId: workflowInfo().workflowId, type: 'install' } },
  });

  try {
    progress.step('distributing artifacts');
    await long.distributeArtifacts({ site: plan.site, bpaUrl, sha256s: profileArtifacts(profile.spec) });

    progress.step('provisioning hosts');
    if (usesClusterApi) {
      saga.add('delete BareMetalHosts', () => quick.deleteBareMetalHosts(plan));
      await quick.registerBareMetalHosts(plan);
      await long.waitHostsProvisioned({ site: plan.site, hosts: hostNames });
    } else {
      const image = { url: osImageUrl(plan, profile.spec.osImage.sha256), sha256: profile.spec.osImage.sha256 };
      await Promise.all(
        spec.hosts.map(async (host) => {
          saga.add(`deprovision ${host.name}`, () =>
            long.deprovisionHost({ site: plan.site, ironicUrl, host: host.name }),
          );
          progress.item(host.name, 'provisioning', ironicNodeName(plan.site, host.name));
          await long.provisionHost({
            site: plan.site,
            ironicUrl,
            host,
            image,
            ...(spec.endpoints.ironicDeployImages && { deployImages: spec.endpoints.ironicDeployImages }),
          });
          progress.item(host.name, 'provisioned');
        }),
      );
    }

    progress.step('creating the cluster');
    let bpaKubeconfig = '';
    if (usesClusterApi) {
      saga.add('delete cluster objects', () => long.deleteClusterObjects(plan));
      await quick.applyClusterObjects(plan);
      await long.waitClusterProvisioned({ site: plan.site });
    } else {
      saga.add('reset the cluster', () => long.resetCluster({ site: plan.site, bpaUrl }));
      bpaKubeconfig = await long.bringUpCluster({
        site: plan.site,
        bpaUrl,
        kubernetesVersion: spec.cluster.kubernetesVersion,
      });
    }

    progress.step('installing binary packages');
    const packages = profile.spec.binaryPackages;
    if (packages.length > 0) {
      saga.add('roll back binary packages', () =>
        long.rollbackPackages({ site: plan.site, bpaUrl, hosts: hostNames, packages: packages.map((p) => p.name) }),
      );
      const installed = await long.installPackages({ site: plan.site, bpaUrl, hosts: hostNames, packages });
      for (const [host, versions] of Object.entries(installed)) {
        progress.item(host, 'packages installed');
        await inventory.recordHostState({ site: plan.site, host, state: 'Provisioned', packages: versions });
      }
    }

    progress.step('fetching the kubeconfig');
    const kubeconfigSecret = usesClusterApi ? await quick.fetchClusterKubeconfig({ site: plan.site }) : bpaKubeconfig;

    progress.step('installing add-ons');
    const charts: Record<string, number> = {};
    for (const chart of profile.spec.containerPackages) {
      saga.add(`uninstall ${chart.name}`, () => long.uninstallChart({ site: plan.site, kubeconfigSecret, chart }));
      charts[chart.name] = (await long.installChart({ site: plan.site, kubeconfigSecret, chart })).revision;
    }

    progress.step('recording the installed profile');
    await inventory.recordSiteStatus({
      site: plan.site,
      status: {
        phase: 'Ready',
        installedProfile: { name: profile.name, version: profile.version },
        kubernetesVersion: spec.cluster.kubernetesVersion,
        message: `installed ${profile.name} ${profile.version}`,
      },
    });
    progress.step('done');
    return {
      site: plan.site,
      profile: { name: profile.name, version: profile.version },
      hosts: hostNames,
      kubeconfigSecret,
      charts,
    };
  } catch (err) {
    const stoppedAt = progress.current.step;
    const cancelled = isCancellation(err);
    const reason = cancelled ? 'cancelled' : failureMessage(err);
    // Recorded even when the operator cancelled: the inventory must say how the site was left.
    const recordFailed = (message: string) =>
      CancellationScope.nonCancellable(() =>
        inventory.recordSiteStatus({ site: plan.site, status: { phase: 'Failed', message } }),
      );
    if (input.keepOnFailure && !cancelled) {
      await recordFailed(`stopped at "${stoppedAt}": ${reason}; kept for diagnosis (${saga.pending.join(', ')})`);
      throw err;
    }
    progress.step(`compensating (failed at "${stoppedAt}")`);
    const failed = await saga.compensate();
    await recordFailed(
      `install ${reason} at "${stoppedAt}"; ` +
        (failed.length === 0 ? 'everything it had done was undone' : `compensations that failed: ${failed.join(', ')}`),
    );
    if (cancelled) throw err;
    throw ApplicationFailure.create({
      type: 'SiteInstallFailed',
      message: `install of ${plan.site} failed at "${stoppedAt}": ${reason}`,
      cause: err instanceof Error ? err : undefined,
      nonRetryable: true,
    });
  }
}

/** The innermost message: an activity failure wraps the activity's own error as its cause. */
function failureMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  return err.cause instanceof Error ? failureMessage(err.cause) : err.message;
}
