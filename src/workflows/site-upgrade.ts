import type { SiteUpgradeInput } from '../domain/operations.ts';
import { ProgressTracker } from './progress.ts';
import { Saga } from './saga.ts';
import { inventoryActivities as inventory, siteActivities } from './site-activities-options.ts';
import { failOperation, recordOperationStarted, reportingToRollout } from './site-operation.ts';

export interface SiteUpgradeResult {
  site: string;
  kubernetesVersion: string;
  /** The parts in the order they were upgraded. */
  parts: string[];
}

/**
 * Upgrade a site's Kubernetes: the control plane first, then the workers, each waited for until every machine runs
 * the version, then the version recorded. Through Cluster-API (its controllers roll the machines) or, without it,
 * kubeadm through the BPA (first control plane `upgrade apply`, the others `upgrade node`, one at a time).
 * Kubernetes cannot be downgraded, so nothing is compensated: a failure stops and says which part is where.
 */
export async function siteUpgrade(input: SiteUpgradeInput): Promise<SiteUpgradeResult> {
  return reportingToRollout(input, () => upgrade(input));
}

async function upgrade(input: SiteUpgradeInput): Promise<SiteUpgradeResult> {
  const progress = new ProgressTracker();
  const saga = new Saga();
  progress.step('loading the site plan');
  const plan = await inventory.loadSitePlan(input.site);
  const { long, quick } = siteActivities(plan);
  const version = input.kubernetesVersion;
  const parts: string[] = [];
  await recordOperationStarted(plan.site, 'upgrade', 'Upgrading');

  try {
    if (plan.spec.cluster.provisioner === 'cluster-api') {
      for (const part of ['control-plane', 'workers'] as const) {
        progress.step(`upgrading the ${part === 'workers' ? 'workers' : 'control plane'} to ${version}`);
        progress.item(part, 'rolling');
        await quick.upgradeKubernetes({ site: plan.site, version, part });
        await long.waitKubernetesVersion({ site: plan.site, version, part });
        progress.item(part, `at ${version}`);
        parts.push(part);
      }
    } else {
      progress.step(`upgrading the cluster to ${version} with kubeadm`);
      await long.upgradeKubeadmCluster({
        site: plan.site,
        bpaUrl: plan.spec.endpoints.bpaUrl,
        kubernetesVersion: version,
        packages: [],
      });
      parts.push('control-plane', 'workers');
    }

    progress.step('recording the version');
    await inventory.recordSiteStatus({
      site: plan.site,
      status: { phase: 'Ready', kubernetesVersion: version, message: `upgraded to Kubernetes ${version}` },
    });
    progress.step('done');
    return { site: plan.site, kubernetesVersion: version, parts };
  } catch (err) {
    return failOperation(
      {
        site: plan.site,
        kind: 'upgrade',
        progress,
        saga,
        // Nothing is undone: the parts already upgraded stay so, and the status says which.
        undonePhase: 'Failed',
        undoneMessage: `upgraded so far: ${parts.join(', ') || 'nothing'} (Kubernetes cannot be downgraded)`,
      },
      err,
    );
  }
}
