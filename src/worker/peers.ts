import { HelmClient } from '../clients/helm/index.ts';
import { IronicClient } from '../clients/ironic/index.ts';
import { kubernetesClient } from '../clients/kubernetes/index.ts';
import type { SitePeers } from '../activities/site.ts';
import type { Store } from '../store/index.ts';

/** The real peers' clients, built on demand per site URL or kubeconfig. */
export function realPeers(store: Store, opts: { helmBinary: string }): SitePeers {
  return {
    store,
    ironic: (url) => new IronicClient({ url }),
    kube: (kubeconfig) => kubernetesClient(kubeconfig),
    helm: (kubeconfigPath) => new HelmClient({ helmBinary: opts.helmBinary, kubeconfigPath }),
  };
}
