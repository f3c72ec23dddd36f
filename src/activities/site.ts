import { readFile } from 'node:fs/promises';
import { BpaClient } from '../clients/bpa/index.ts';
import type { HelmClient } from '../clients/helm/index.ts';
import type { IronicClient } from '../clients/ironic/index.ts';
import type { KubeconfigSource, KubernetesClient } from '../clients/kubernetes/index.ts';
import type { Store } from '../store/index.ts';
import type { InventoryActivities, SiteActivities } from '../workflows/site-activities.ts';
import { createAddonActivities } from './addons.ts';
import { bpaAccess, type BpmActivityDeps, createBpmActivities } from './bpm.ts';
import { createClusterActivities } from './cluster.ts';
import { createFleetActivities } from './fleet.ts';
import { createHostActivities } from './hosts.ts';
import { createInventoryActivities } from './inventory.ts';
import { createProvisioningActivities } from './provisioning.ts';
import { sharedRead } from './shared-reads.ts';

/** Artifacts held in memory are at most this big, 64 of them at most: 16 MiB. */
const heldArtifactMaxBytes = 256 * 2 ** 10;

/** The peers a worker that runs site operations reaches, as factories so that tests hand in lab peers. */
export interface SitePeers {
  store: Store;
  ironic: (url: string) => IronicClient;
  kube: (kubeconfig: KubeconfigSource) => KubernetesClient;
  helm: (kubeconfigPath: string) => HelmClient;
  /** A site's BPA; the real client by default. */
  bpa?: (url: string, token: string) => BpaClient;
  /** How often the BPM polls a BPA job (default 2 s). */
  bpaPollIntervalMs?: number;
}

/**
 * The activities of the site sagas, checked against the contract the workflows are written to: a mismatch is a
 * type error here, not a failed activity in production.
 */
export function createSiteActivities(peers: SitePeers) {
  const { store } = peers;
  const inventory = createInventoryActivities({ store });
  const activities = {
    ...inventory,
    ...createFleetActivities({ store }),
    ...siteLocalActivities(peers, inventory),
  };
  return activities satisfies InventoryActivities & SiteActivities;
}

/**
 * Only the activities that reach inside a site, for a worker on the site's own task queue (agent mode `local`); the
 * inventory's stay with the global controller. Hosts still record their state as they go: that is an inventory
 * write, made here straight to the store the agent shares with the controller.
 */
export function createSiteLocalActivities(peers: SitePeers) {
  return siteLocalActivities(peers, createInventoryActivities({ store: peers.store })) satisfies SiteActivities;
}

function siteLocalActivities(peers: SitePeers, inventory: Pick<InventoryActivities, 'recordHostState'>) {
  const { store } = peers;
  // Named by their content: the same sha256 is the same artifact for as long as it is kept.
  const artifact = sharedRead((sha256: string) => store.artifacts.get(sha256), { ttlMs: 60_000 });
  const pathOf = (sha256: string) => store.artifacts.files.pathOf(sha256);
  const bpmDeps: BpmActivityDeps = {
    sites: store.sites,
    secrets: store.secrets,
    artifacts: {
      get: artifact,
      pathOf,
      // A patch's packages go to every site of a rollout: small ones are read from disk once, not once per site.
      held: sharedRead(
        async (sha256: string) =>
          (await artifact(sha256)).size <= heldArtifactMaxBytes ? readFile(pathOf(sha256)) : undefined,
        { ttlMs: 60_000, max: 64 },
      ),
    },
    bpa: peers.bpa ?? ((url, token) => new BpaClient({ url, token })),
    ...(peers.bpaPollIntervalMs !== undefined && { pollIntervalMs: peers.bpaPollIntervalMs }),
  };
  const activities = {
    ...createProvisioningActivities({ ironic: peers.ironic, secrets: store.secrets }),
    ...createClusterActivities({ kube: peers.kube, secrets: store.secrets, sites: store.sites }),
    ...createAddonActivities({
      helm: peers.helm,
      secrets: store.secrets,
      chartPath: (sha256) => store.artifacts.files.pathOf(sha256),
    }),
    ...createBpmActivities(bpmDeps),
    ...createHostActivities({
      kube: peers.kube,
      ironic: peers.ironic,
      secrets: store.secrets,
      sites: store.sites,
      bpa: bpaAccess(bpmDeps),
      recordHostState: (input) => inventory.recordHostState(input),
    }),
  };
  return activities satisfies SiteActivities;
}
