/**
 * What the site workflows ask of their activities, by concern. The worker's activity objects must satisfy these
 * types (checked where they are wired), so workflows depend on a contract, not on the activity modules' transport.
 * Every input and output is plain data without secret values: secrets travel by reference.
 */
import type { ContainerPackage, BinaryPackage } from '../domain/software-profile.ts';
import type { ProvisionedHost, ProvisionHostInput, SitePlan } from '../domain/plan.ts';
import type { SiteStatus } from '../domain/site.ts';

export interface InventoryActivities {
  loadSitePlan(site: string): Promise<SitePlan>;
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
}

/** The site's BPA, through the BPM. */
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
  rollbackPackages(input: { site: string; bpaUrl: string; hosts: string[]; packages: string[] }): Promise<void>;
  /** kubeadm init and join through the BPA; stores the kubeconfig as an inventory secret and returns its name. */
  bringUpCluster(input: { site: string; bpaUrl: string; kubernetesVersion: string }): Promise<string>;
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

export type SiteActivities = ProvisioningActivities & ClusterActivities & PackageActivities & AddonActivities;
