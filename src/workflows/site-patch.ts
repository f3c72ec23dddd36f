import { workflowInfo } from '@temporalio/workflow';
import type { SitePatchInput } from '../domain/operations.ts';
import { kubeconfigSecretName } from '../domain/keys.ts';
import type { HostPatchInput, SitePlan } from '../domain/plan.ts';
import { profileDiff } from '../domain/profile-diff.ts';
import type { HostSpec } from '../domain/site.ts';
import type { BinaryPackage } from '../domain/software-profile.ts';
import { ProgressTracker } from './progress.ts';
import { Saga } from './saga.ts';
import { inventoryActivities as inventory, siteActivities, smallUploadMaxBytes } from './site-activities-options.ts';
import { failOperation, reportingToRollout } from './site-operation.ts';

export interface SitePatchResult {
  site: string;
  from: { name: string; version: string };
  to: { name: string; version: string };
  /** Hosts in the order they were patched, with whether a package had them rebooted. */
  hosts: { host: string; rebooted: boolean }[];
  /** Each changed chart's new release revision (0: uninstalled). */
  charts: Record<string, number>;
  /** Binary packages the new profile no longer lists: left on the hosts, no longer managed. */
  unmanaged: string[];
  osImageChanged: boolean;
}

/**
 * The rolling order: control-plane hosts one at a time (etcd keeps its quorum), then the workers, `maxUnavailable`
 * at a time.
 */
export function rollingBatches(hosts: HostSpec[], maxUnavailable: number): HostSpec[][] {
  const controlPlanes = hosts.filter((h) => h.role === 'control-plane').map((h) => [h]);
  const workers = hosts.filter((h) => h.role === 'worker');
  const batches: HostSpec[][] = [];
  for (let i = 0; i < workers.length; i += maxUnavailable) batches.push(workers.slice(i, i + maxUnavailable));
  return [...controlPlanes, ...batches];
}

/**
 * Patch an installed site to another software profile: upload what the site's BPA lacks, then host by host in
 * rolling order (cordon, drain, packages, reboot if one needs it, Ready, uncordon, verify), then `helm upgrade` the
 * changed charts, then record the new profile. Any failure rolls every host and chart back to what it had: the site
 * ends fully patched or fully on its old profile, never between.
 */
export async function sitePatch(input: SitePatchInput): Promise<SitePatchResult> {
  return reportingToRollout(input, () => patch(input));
}

async function patch(input: SitePatchInput): Promise<SitePatchResult> {
  const progress = new ProgressTracker();
  const saga = new Saga();
  progress.step('loading the patch plan');
  const { plan, installed, artifactBytes } = await inventory.loadPatchPlan({
    site: input.site,
    profile: input.profile,
    workflowId: workflowInfo().workflowId,
  });
  const { brief, long, upload, host: hostStep } = siteActivities(plan, input.hostTakeoverSeconds);
  const { spec, profile } = plan;
  const { ironicUrl, bpaUrl } = spec.endpoints;
  const diff = profileDiff(installed.spec, profile.spec);
  const packages = diff.binaries.flatMap((c) => (c.to ? [c.to] : []));
  const result: SitePatchResult = {
    site: plan.site,
    from: { name: installed.name, version: installed.version },
    to: { name: profile.name, version: profile.version },
    hosts: [],
    charts: {},
    unmanaged: diff.binaries.flatMap((c) => (c.to ? [] : c.from ? [c.from.name] : [])),
    osImageChanged: diff.osImageChanged,
  };

  try {
    progress.step('distributing artifacts');
    const needed = [...packages.map((p) => p.artifact.sha256), ...diff.charts.flatMap((c) => c.to?.chart.sha256 ?? [])];
    // What the site may lack, at most: small enough, it is sent within this workflow task. Plans recorded before
    // they carried sizes come to Infinity, so that their histories replay with the long step they scheduled.
    const neededBytes = needed.reduce((total, sha256) => total + (artifactBytes?.[sha256] ?? Infinity), 0);
    const send = upload && neededBytes <= smallUploadMaxBytes ? upload : long;
    // Independent of each other: the kubeconfig's copy runs within the workflow task that schedules the upload.
    const [, kubeconfigSecret] = await Promise.all([
      needed.length > 0 ? send.distributeArtifacts({ site: plan.site, bpaUrl, sha256s: needed }) : undefined,
      spec.cluster.provisioner === 'cluster-api'
        ? brief.fetchClusterKubeconfig({ site: plan.site })
        : kubeconfigSecretName(plan.site),
    ]);

    if (packages.length > 0) {
      progress.step('patching hosts');
      const hostPatch = (host: HostSpec, action: HostPatchInput['action'], pkgs: BinaryPackage[]): HostPatchInput => ({
        site: plan.site,
        host: host.name,
        action,
        packages: pkgs,
        reboot: pkgs.some((p) => p.rebootRequired),
        kubeconfigSecret,
        bpaUrl,
        ironicUrl,
      });
      for (const host of spec.hosts) progress.item(host.name, 'waiting');
      for (const batch of rollingBatches(spec.hosts, input.maxUnavailable)) {
        const outcomes = await Promise.allSettled(
          batch.map(async (host) => {
            // Registered first: a host that fails half-way is rolled back as well (the BPA leaves alone a host
            // not at the version given up).
            saga.add(`roll back ${host.name}`, async () => {
              progress.item(host.name, 'rolling back');
              await hostStep.patchHost(hostPatch(host, 'rollback', packages));
              progress.item(host.name, 'rolled back');
            });
            progress.item(host.name, 'patching');
            const done = await hostStep.patchHost(hostPatch(host, 'install', packages));
            progress.item(host.name, 'patched', done.rebooted ? 'rebooted' : undefined);
            result.hosts.push({ host: host.name, rebooted: done.rebooted });
          }),
        );
        // The whole batch settles first, so that no host is still being patched while compensation starts.
        const failed = outcomes.find((o) => o.status === 'rejected');
        if (failed) throw failed.reason;
      }
    }

    if (diff.charts.length > 0) {
      progress.step('upgrading add-ons');
      const target = { site: plan.site, kubeconfigSecret };
      // Releases are independent: upgraded at once, each with its way back (the old chart and values again, which
      // Helm records as a new revision; a release the patch added is removed).
      const outcomes = await Promise.allSettled(
        diff.charts.map(async ({ from, to }) => {
          if (to) {
            saga.add(`restore ${to.name}`, () =>
              from ? long.installChart({ ...target, chart: from }) : long.uninstallChart({ ...target, chart: to }),
            );
            result.charts[to.name] = (await long.installChart({ ...target, chart: to })).revision;
          } else if (from) {
            saga.add(`reinstall ${from.name}`, () => long.installChart({ ...target, chart: from }));
            await long.uninstallChart({ ...target, chart: from });
            result.charts[from.name] = 0;
          }
        }),
      );
      const failed = outcomes.find((o) => o.status === 'rejected');
      if (failed) throw failed.reason;
    }

    progress.step('recording the installed profile');
    await recordPatched(plan);
    progress.step('done');
    return result;
  } catch (err) {
    return failOperation(
      {
        site: plan.site,
        kind: 'patch',
        progress,
        saga,
        undonePhase: 'Ready',
        undoneMessage: `the site is back on ${installed.name} ${installed.version}`,
      },
      err,
    );
  }
}

async function recordPatched(plan: SitePlan): Promise<void> {
  await inventory.recordSiteStatus({
    site: plan.site,
    status: {
      phase: 'Ready',
      installedProfile: { name: plan.profile.name, version: plan.profile.version },
      message: `patched to ${plan.profile.name} ${plan.profile.version}`,
    },
  });
}
