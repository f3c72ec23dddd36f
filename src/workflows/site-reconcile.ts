import type { SiteReconcileInput } from '../domain/operations.ts';
import { ironicNodeName, kubeconfigSecretName } from '../domain/keys.ts';
import { ProgressTracker } from './progress.ts';
import { Saga } from './saga.ts';
import { inventoryActivities as inventory, siteActivities } from './site-activities-options.ts';
import { osImageUrl } from './site-install.ts';
import { failOperation, recordOperationStarted } from './site-operation.ts';

export interface SiteReconcileResult {
  site: string;
  added: string[];
  removed: string[];
}

/**
 * Bring an installed site's hosts in line with its spec, the ICN way of growing a site: a host added to the spec is
 * provisioned, joined and given the site's packages (its charts' DaemonSets reach it by themselves); a host gone
 * from the spec is cordoned, drained, taken out of the cluster and deprovisioned. The other hosts are not touched.
 * Additions come first (capacity before it is taken away) and are compensated; a removal is not undone once its
 * node is drained, but a failure says which host is where.
 */
export async function siteReconcile(input: SiteReconcileInput): Promise<SiteReconcileResult> {
  const progress = new ProgressTracker();
  const saga = new Saga();
  progress.step('loading the site plan');
  const { plan, installedHosts, kubernetesVersion } = await inventory.loadInstalledPlan(input.site);
  const { brief, quick, long } = siteActivities(plan);
  const { spec, profile } = plan;
  const { ironicUrl, bpaUrl } = spec.endpoints;
  const usesClusterApi = spec.cluster.provisioner === 'cluster-api';
  const added = spec.hosts.filter((h) => !installedHosts.includes(h.name));
  const removed = installedHosts.filter((name) => !spec.hosts.some((h) => h.name === name));
  const result: SiteReconcileResult = { site: plan.site, added: added.map((h) => h.name), removed };
  if (added.length === 0 && removed.length === 0) {
    progress.step('done: the hosts match the spec');
    return result;
  }
  await recordOperationStarted(plan.site, 'reconcile', 'Patching');
  for (const h of added) progress.item(h.name, 'to add');
  for (const h of removed) progress.item(h, 'to remove');

  try {
    const kubeconfigSecret = usesClusterApi
      ? await brief.fetchClusterKubeconfig({ site: plan.site })
      : kubeconfigSecretName(plan.site);
    // Applying the cluster objects sizes the machine sets from the spec's hosts, for additions and removals alike.
    const resizeCluster = async () => {
      await quick.applyClusterObjects(plan);
      for (const part of ['control-plane', 'workers'] as const) {
        await long.waitKubernetesVersion({ site: plan.site, version: kubernetesVersion, part });
      }
    };

    if (added.length > 0) {
      progress.step('provisioning the new hosts');
      if (usesClusterApi) {
        for (const h of added) {
          saga.add(`remove ${h.name}`, () => long.removeBareMetalHost({ site: plan.site, host: h.name }));
        }
        await long.registerBareMetalHosts(plan);
        await long.waitHostsProvisioned({ site: plan.site, hosts: added.map((h) => h.name) });
        progress.step('joining the new hosts');
        await resizeCluster();
      } else {
        const image = { url: osImageUrl(plan, profile.spec.osImage.sha256), sha256: profile.spec.osImage.sha256 };
        await Promise.all(
          added.map(async (host) => {
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
          }),
        );
        progress.step('joining the new hosts');
        await long.bringUpCluster({
          site: plan.site,
          bpaUrl,
          kubernetesVersion,
          packages: profile.spec.binaryPackages,
          hosts: spec.hosts.filter((h) => !removed.includes(h.name)).map((h) => h.name),
        });
      }
      progress.step('installing the packages on the new hosts');
      const packages = profile.spec.binaryPackages;
      const installed =
        packages.length > 0
          ? await long.installPackages({ site: plan.site, bpaUrl, hosts: result.added, packages })
          : {};
      await inventory.recordSiteStatus({
        site: plan.site,
        status: {
          hosts: Object.fromEntries(
            result.added.map((h) => [h, { state: 'Ready', ...(installed[h] && { packages: installed[h] }) }]),
          ),
        },
      });
      for (const h of added) progress.item(h.name, 'added');
    }

    for (const host of removed) {
      progress.step(`removing ${host}`);
      progress.item(host, 'draining');
      await long.drainHost({ site: plan.site, host, kubeconfigSecret });
      progress.item(host, 'leaving the cluster');
      if (usesClusterApi) {
        // The host's machine goes first (metal3 deprovisions it), so that the smaller machine set keeps the others;
        // with the real controllers the Machine is marked with cluster.x-k8s.io/delete-machine to the same end.
        await long.removeBareMetalHost({ site: plan.site, host });
        await resizeCluster();
      } else {
        await long.bringUpCluster({
          site: plan.site,
          bpaUrl,
          kubernetesVersion,
          packages: profile.spec.binaryPackages,
          hosts: spec.hosts.map((h) => h.name),
        });
        await long.deprovisionHost({ site: plan.site, ironicUrl, host });
      }
      await quick.removeHostNode({ site: plan.site, host, kubeconfigSecret });
      await inventory.forgetHost({ site: plan.site, host });
      progress.item(host, 'removed');
    }

    progress.step('recording the hosts');
    await inventory.recordSiteStatus({
      site: plan.site,
      status: {
        phase: 'Ready',
        message: `hosts reconciled: added ${result.added.join(', ') || 'none'}, removed ${removed.join(', ') || 'none'}`,
      },
    });
    progress.step('done');
    return result;
  } catch (err) {
    return failOperation(
      {
        site: plan.site,
        kind: 'reconcile',
        progress,
        saga,
        undonePhase: 'Ready',
        undoneMessage: 'the added hosts were removed again',
      },
      err,
    );
  }
}
