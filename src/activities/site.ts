import type { HelmClient } from '../clients/helm/index.ts';
import type { IronicClient } from '../clients/ironic/index.ts';
import type { KubernetesClient } from '../clients/kubernetes/index.ts';
import type { Store } from '../store/index.ts';
import type {
  AddonActivities,
  ClusterActivities,
  InventoryActivities,
  ProvisioningActivities,
} from '../workflows/site-activities.ts';
import { createAddonActivities } from './addons.ts';
import { createClusterActivities } from './cluster.ts';
import { createInventoryActivities } from './inventory.ts';
import { createProvisioningActivities } from './provisioning.ts';

/** The peers a worker that runs site operations reaches, as factories so that tests hand in lab peers. */
export interface SitePeers {
  store: Store;
  ironic: (url: string) => IronicClient;
  kube: (kubeconfigPath: string) => KubernetesClient;
  helm: (kubeconfigPath: string) => HelmClient;
}

/**
 * The activities of the site sagas but the BPA's, checked against the contract the workflows are written to: a
 * mismatch is a type error here, not a failed activity in production.
 */
export function createSiteActivities(peers: SitePeers) {
  const { store } = peers;
  const activities = {
    ...createInventoryActivities({ store }),
    ...createProvisioningActivities({ ironic: peers.ironic, secrets: store.secrets }),
    ...createClusterActivities({ kube: peers.kube, secrets: store.secrets, sites: store.sites }),
    ...createAddonActivities({
      helm: peers.helm,
      secrets: store.secrets,
      chartPath: (sha256) => store.artifacts.files.pathOf(sha256),
    }),
  };
  return activities satisfies InventoryActivities & ProvisioningActivities & ClusterActivities & AddonActivities;
}
