import { ApplicationFailure, Context } from '@temporalio/activity';
import { profileArtifacts } from '../../src/domain/profile-diff.ts';
import type { SitePlan } from '../../src/domain/plan.ts';
import { SiteSpec } from '../../src/domain/site.ts';
import { SoftwareProfileSpec } from '../../src/domain/software-profile.ts';
import type { InventoryActivities, SiteActivities } from '../../src/workflows/site-activities.ts';

/**
 * Mocked site activities for orchestration tests: each call is logged, failures and blocking on demand. The real
 * activities are tested against the real peers in test/activities.
 */
const digest = (c: string) => c.repeat(64);
const host = (i: number, role: 'control-plane' | 'worker') => ({
  name: `host-${i}`,
  role,
  bmc: { address: `redfish://10.0.0.${i}/redfish/v1/Systems/${i}`, credentialsRef: { name: 'bmc' } },
  bootMacAddress: `52:54:00:00:00:0${i}`,
  ssh: { address: `10.1.0.${i}`, keyRef: { name: 'ssh' } },
});

export function plan(provisioner: 'kubeadm' | 'cluster-api'): SitePlan {
  return {
    site: 'edge-01',
    spec: SiteSpec.parse({
      endpoints: {
        ironicUrl: 'http://10.0.0.2:6385',
        bpaUrl: 'http://10.0.0.2:9015',
        bootstrapKubeconfigRef: { name: 'boot' },
      },
      cluster: { kubernetesVersion: 'v1.34.2', controlPlaneEndpoint: { host: '10.1.0.100' }, provisioner },
      softwareProfile: { name: 'edge-base', version: '1.0.0' },
      hosts: [host(1, 'control-plane'), host(2, 'worker'), host(3, 'worker')],
    }),
    profile: {
      name: 'edge-base',
      version: '1.0.0',
      spec: SoftwareProfileSpec.parse({
        version: '1.0.0',
        osImage: { sha256: digest('a') },
        binaryPackages: [
          { name: 'containerd', version: '1.7.0', artifact: { sha256: digest('b') }, install: 'i', verify: 'v' },
        ],
        containerPackages: [{ name: 'multus', version: '4.0.0', chart: { sha256: digest('c') } }],
      }),
    },
  };
}

/** The profile a patch moves to: containerd changed (and needs a reboot), multus changed, a chart added. */
export function nextProfile(base: SitePlan['profile']): SitePlan['profile'] {
  return {
    name: 'edge-base',
    version: '1.1.0',
    spec: SoftwareProfileSpec.parse({
      ...base.spec,
      version: '1.1.0',
      binaryPackages: [
        {
          name: 'containerd',
          version: '1.7.1',
          artifact: { sha256: digest('d') },
          install: 'i',
          verify: 'v',
          rebootRequired: true,
        },
      ],
      containerPackages: [
        { name: 'multus', version: '4.1.0', chart: { sha256: digest('e') } },
        { name: 'sriov', version: '1.0.0', chart: { sha256: digest('f') } },
      ],
    }),
  };
}

export interface Script {
  plan: SitePlan;
  /** What a patch moves to (loadPatchPlan's target); the site has `plan.profile` installed. */
  patchTo?: SitePlan['profile'];
  /** loadPatchPlan's artifact sizes, by sha256; by default 1 MiB for each artifact of the profile patched to. */
  artifactBytes?: Record<string, number>;
  /** The hosts the site has installed (loadInstalledPlan), by default the plan's. */
  installedHosts?: string[];
  /** Activity name (or name:host) that fails, non-retryably. */
  failAt?: string;
  /** Activity name (or name:host) that blocks until cancelled. */
  blockAt?: string;
}

/** Mocked activities that log each call, in order, as "name" or "name:host". */
export function mockActivities(script: Script) {
  const calls: string[] = [];
  const statuses: unknown[] = [];
  const act = async (call: string) => {
    calls.push(call);
    const name = call.split(':')[0] ?? call;
    if (script.failAt === call || script.failAt === name) throw ApplicationFailure.nonRetryable(`${call} broke`);
    if (script.blockAt === call || script.blockAt === name) {
      for (;;) {
        Context.current().heartbeat();
        await Context.current().sleep(100);
      }
    }
  };
  const activities: InventoryActivities & SiteActivities = {
    loadSitePlan: async () => (await act('loadSitePlan'), script.plan),
    loadPatchPlan: async () => {
      await act('loadPatchPlan');
      const to = script.patchTo ?? script.plan.profile;
      return {
        plan: { ...script.plan, profile: to },
        installed: script.plan.profile,
        artifactBytes: script.artifactBytes ?? Object.fromEntries(profileArtifacts(to.spec).map((d) => [d, 2 ** 20])),
      };
    },
    loadInstalledPlan: async () => {
      await act('loadInstalledPlan');
      return {
        plan: script.plan,
        installedHosts: script.installedHosts ?? script.plan.spec.hosts.map((h) => h.name),
        kubernetesVersion: script.plan.spec.cluster.kubernetesVersion,
      };
    },
    forgetHost: async ({ host: h }) => act(`forgetHost:${h}`),
    recordSiteStatus: async ({ status }) => void statuses.push(status),
    recordHostState: async ({ host: h }) => act(`recordHostState:${h}`),
    distributeArtifacts: async ({ sha256s }) => (await act('distributeArtifacts'), { uploaded: sha256s.length }),
    provisionHost: async ({ host: h }) => {
      await act(`provisionHost:${h.name}`);
      return { host: h.name, node: `edge-01-${h.name}`, nodeUuid: 'u', provisionState: 'active' };
    },
    deprovisionHost: async ({ host: h }) => act(`deprovisionHost:${h}`),
    rebootHost: async ({ host: h }) => act(`rebootHost:${h}`),
    registerBareMetalHosts: async () => act('registerBareMetalHosts'),
    waitHostsProvisioned: async () => act('waitHostsProvisioned'),
    deleteBareMetalHosts: async () => act('deleteBareMetalHosts'),
    applyClusterObjects: async () => act('applyClusterObjects'),
    waitClusterProvisioned: async () => act('waitClusterProvisioned'),
    deleteClusterObjects: async () => act('deleteClusterObjects'),
    fetchClusterKubeconfig: async () => (await act('fetchClusterKubeconfig'), 'edge-01-kubeconfig'),
    removeBareMetalHost: async ({ host: h }) => act(`removeBareMetalHost:${h}`),
    upgradeKubernetes: async ({ part }) => act(`upgradeKubernetes:${part}`),
    waitKubernetesVersion: async ({ part }) => act(`waitKubernetesVersion:${part}`),
    patchHost: async ({ host: h, action, packages, reboot }) => {
      await act(`patchHost:${h}:${action}`);
      return {
        host: h,
        node: `edge-01-${h}`,
        packages: Object.fromEntries(packages.map((p) => [p.name, p.version])),
        rebooted: reboot,
      };
    },
    drainHost: async ({ host: h }) => act(`drainHost:${h}`),
    removeHostNode: async ({ host: h }) => act(`removeHostNode:${h}`),
    installPackages: async ({ hosts, packages }) => {
      await act('installPackages');
      return Object.fromEntries(hosts.map((h) => [h, Object.fromEntries(packages.map((p) => [p.name, p.version]))]));
    },
    rollbackPackages: async () => act('rollbackPackages'),
    bringUpCluster: async ({ hosts }) => (await act(`bringUpCluster:${(hosts ?? []).join(',')}`), 'edge-01-kubeconfig'),
    upgradeKubeadmCluster: async () => act('upgradeKubeadmCluster'),
    resetCluster: async () => act('resetCluster'),
    installChart: async ({ chart }) => (await act(`installChart:${chart.name}@${chart.version}`), { revision: 1 }),
    uninstallChart: async ({ chart }) => act(`uninstallChart:${chart.name}`),
  };
  return { activities, calls, statuses };
}
