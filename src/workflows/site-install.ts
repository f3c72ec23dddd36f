import type { SiteInstallInput } from '../domain/operations.ts';
import { ironicNodeName } from '../domain/keys.ts';
import type { SitePlan } from '../domain/plan.ts';
import { profileArtifacts } from '../domain/profile-diff.ts';
import { ProgressTracker } from './progress.ts';
import { Saga } from './saga.ts';
import { inventoryActivities as inventory, siteActivities } from './site-activities-options.ts';
import { failOperation, recordOperationStarted, reportingToRollout } from './site-operation.ts';

export interface SiteInstallResult {
  site: string;
  profile: { name: string; version: string };
  hosts: string[];
  kubeconfigSecret: string;
  charts: Record<string, number>;
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
  return reportingToRollout(input, () => install(input));
}

async function install(input: SiteInstallInput): Promise<SiteInstallResult> {
  const progress = new ProgressTracker();
  const saga = new Saga();
  progress.step('loading the site plan');
  const plan = await inventory.loadSitePlan(input.site);
  const { brief, quick, long } = siteActivities(plan);
  const { spec, profile } = plan;
  const { ironicUrl, bpaUrl } = spec.endpoints;
  const hostNames = spec.hosts.map((h) => h.name);
  const usesClusterApi = spec.cluster.provisioner === 'cluster-api';
  await recordOperationStarted(plan.site, 'install', 'Installing');

  try {
    progress.step('distributing artifacts');
    await long.distributeArtifacts({ site: plan.site, bpaUrl, sha256s: profileArtifacts(profile.spec) });

    progress.step('provisioning hosts');
    if (usesClusterApi) {
      saga.add('delete BareMetalHosts', () => quick.deleteBareMetalHosts(plan));
      await long.registerBareMetalHosts(plan);
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
        packages: profile.spec.binaryPackages,
      });
    }

    progress.step('installing binary packages');
    const packages = profile.spec.binaryPackages;
    let installed: Record<string, Record<string, string>> = {};
    if (packages.length > 0) {
      // No compensation of its own: undoing the install deprovisions the hosts, and Ironic's cleaning wipes them.
      installed = await long.installPackages({ site: plan.site, bpaUrl, hosts: hostNames, packages });
      for (const host of Object.keys(installed)) progress.item(host, 'packages installed');
    }

    progress.step('fetching the kubeconfig');
    const kubeconfigSecret = usesClusterApi ? await brief.fetchClusterKubeconfig({ site: plan.site }) : bpaKubeconfig;

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
        // One write for every host: the site's hosts as installed, which later host changes are compared with.
        hosts: Object.fromEntries(
          hostNames.map((host) => [host, { state: 'Ready', ...(installed[host] && { packages: installed[host] }) }]),
        ),
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
    return failOperation(
      { site: plan.site, kind: 'install', progress, saga, keepOnFailure: input.keepOnFailure, undonePhase: 'Failed' },
      err,
    );
  }
}
