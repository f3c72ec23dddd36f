/**
 * What the site workflows ask of their activities, by concern. The worker's activity objects must satisfy these
 * types (checked where they are wired), so workflows depend on a contract, not on the activity modules' transport.
 * Every input and output is plain data without secret values: secrets travel by reference.
 */
import type { ContainerPackage, BinaryPackage } from '../domain/software-profile.ts';
import type {
  HostPatchInput,
  InstalledSitePlan,
  HostPatchResult,
  PatchPlan,
  ProvisionedHost,
  ProvisionHostInput,
  SitePlan,
} from '../domain/plan.ts';
import type { SiteStatus } from '../domain/site.ts';

export interface InventoryActivities {
  loadSitePlan(site: string): Promise<SitePlan>;
  /**
   * The site with the profile it is patched to and the profile it has installed (refused if it has none); marks the
   * site Patching by `workflowId` in the same write, one history event pair fewer per patch.
   */
  loadPatchPlan(input: {
    site: string;
    profile: { name: string; version: string };
    workflowId: string;
  }): Promise<PatchPlan>;
  /** An installed site with the profile it runs and the hosts it has (refused before its install). */
  loadInstalledPlan(site: string): Promise<InstalledSitePlan>;
  /** The host is no longer part of the site: its status entry goes. */
  forgetHost(input: { site: string; host: string }): Promise<void>;
  recordSiteStatus(input: { site: string; status: Partial<SiteStatus> }): Promise<void>;
  recordHostState(input: {
    site: string;
    host: string;
    state: string;
    packages?: Record<string, string>;
  }): Promise<void>;
}

export interface ProvisioningActivities {
  provisionHost(input: ProvisionHostInput): Promise<ProvisionedHost>;
  deprovisionHost(input: { site: string; ironicUrl: string; host: string }): Promise<void>;
  rebootHost(input: { site: string; ironicUrl: string; host: string }): Promise<void>;
}

/** Cluster-API + metal3 on the site's bootstrap cluster. */
export interface ClusterActivities {
  registerBareMetalHosts(plan: SitePlan): Promise<void>;
  waitHostsProvisioned(input: { site: string; hosts: string[] }): Promise<void>;
  deleteBareMetalHosts(plan: SitePlan): Promise<void>;
  applyClusterObjects(plan: SitePlan): Promise<void>;
  waitClusterProvisioned(input: { site: string }): Promise<void>;
  deleteClusterObjects(plan: SitePlan): Promise<void>;
  /** Stores the application cluster's kubeconfig as an inventory secret and returns that secret's name. */
  fetchClusterKubeconfig(input: { site: string }): Promise<string>;
  /** One host leaves: its BareMetalHost (metal3 deprovisions it) and BMC Secret are deleted and gone. */
  removeBareMetalHost(input: { site: string; host: string }): Promise<void>;
  upgradeKubernetes(input: { site: string; version: string; part: 'control-plane' | 'workers' }): Promise<void>;
  waitKubernetesVersion(input: { site: string; version: string; part: 'control-plane' | 'workers' }): Promise<void>;
}

/** A host's maintenance in the application cluster: the node's side of patches and removals. */
export interface HostActivities {
  /** Cordon, drain, packages, reboot if needed, Ready, uncordon, verify, record: one heartbeating activity. */
  patchHost(input: HostPatchInput): Promise<HostPatchResult>;
  /** Cordon and drain the host's node, ahead of its removal. */
  drainHost(input: {
    site: string;
    host: string;
    kubeconfigSecret: string;
    drainTimeoutSeconds?: number;
  }): Promise<void>;
  /** The host's Node object goes from the cluster (after kubeadm reset or the machine's deletion). */
  removeHostNode(input: { site: string; host: string; kubeconfigSecret: string }): Promise<void>;
}

/** The site's BPA, through the BPM. Hosts are named; the activity finds how to reach them in the inventory. */
export interface PackageActivities {
  /** Uploads to the site's BPA what it lacks of these artifacts; returns how many were sent. */
  distributeArtifacts(input: { site: string; bpaUrl: string; sha256s: string[] }): Promise<{ uploaded: number }>;
  /** Installs the packages on the hosts and returns each host's installed versions. */
  installPackages(input: {
    site: string;
    bpaUrl: string;
    hosts: string[];
    packages: BinaryPackage[];
  }): Promise<Record<string, Record<string, string>>>;
  /** Each package given (the version given up) goes back to what the host had before it. */
  rollbackPackages(input: { site: string; bpaUrl: string; hosts: string[]; packages: BinaryPackage[] }): Promise<void>;
  /**
   * kubeadm init and joins through the BPA, for the given hosts (all the site's by default): hosts added since the
   * last call are joined, hosts gone are reset. Stores the kubeconfig as an inventory secret and returns its name.
   */
  bringUpCluster(input: {
    site: string;
    bpaUrl: string;
    kubernetesVersion: string;
    packages: BinaryPackage[];
    hosts?: string[];
  }): Promise<string>;
  /** kubeadm upgrade: the first control plane, then the others, then the workers, one at a time. */
  upgradeKubeadmCluster(input: {
    site: string;
    bpaUrl: string;
    kubernetesVersion: string;
    packages: BinaryPackage[];
  }): Promise<void>;
  resetCluster(input: { site: string; bpaUrl: string }): Promise<void>;
}

/** Helm charts in the application cluster (KPM). */
export interface AddonActivities {
  installChart(input: {
    site: string;
    kubeconfigSecret: string;
    chart: ContainerPackage;
  }): Promise<{ revision: number }>;
  uninstallChart(input: { site: string; kubeconfigSecret: string; chart: ContainerPackage }): Promise<void>;
}

export type SiteActivities = ProvisioningActivities &
  ClusterActivities &
  PackageActivities &
  AddonActivities &
  HostActivities;
