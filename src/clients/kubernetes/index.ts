/** The Kubernetes client: `new KubernetesClient(kubeconfigPath)` or `kubernetesClient(kubeconfigPath)`. */
import { KubernetesClient } from './client.ts';
import type { KubeconfigSource } from './transport.ts';

export { KubernetesClient, fieldManager, type ApplyOptions, type ListOptions } from './client.ts';
export { isConflict, isNotFound } from './errors.ts';
export type { WaitOptions } from './watch.ts';
export {
  cordonNode,
  deleteNode,
  drainNode,
  findHostNode,
  uncordonNode,
  waitNodeReady,
  type DrainOptions,
  type DrainProgress,
  type NodeObject,
} from './nodes.ts';
export {
  conditionsOf,
  describeRef,
  findCondition,
  refOf,
  type Condition,
  type KubeObject,
  type ObjectMeta,
  type ObjectRef,
} from './types.ts';

export type { KubeconfigSource } from './transport.ts';

export function kubernetesClient(source: KubeconfigSource): KubernetesClient {
  return new KubernetesClient(source);
}
