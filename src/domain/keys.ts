/**
 * Names and keys the workflows share with the API and the activities, free of zod on purpose: every workflow run
 * evaluates its bundle's modules, and zod's schemas cost ≈ 11 ms of CPU per start (measured: 2,000 child workflows,
 * 47 s of CPU with zod in the bundle, 27 s without). Workflows import only types from the zod modules.
 */

/** Workflow type names: the API starts them by name; the worker registers the functions of the same names. */
export const workflowTypes = {
  install: 'siteInstall',
  patch: 'sitePatch',
  upgrade: 'siteUpgrade',
  reconcile: 'siteReconcile',
  rollout: 'fleetRollout',
} as const;

export type SiteOperationName = 'install' | 'patch' | 'upgrade' | 'reconcile';

/** One business key per site and operation, so a repeated request joins or is refused, never duplicated. */
export function siteOperationId(site: string, operation: SiteOperationName): string {
  return `site/${site}/${operation}`;
}

/** A patch's host takeover unless it says otherwise (`HostTakeoverSeconds`): a dead worker's host moves on within 2.5 minutes. */
export const defaultHostTakeoverSeconds = 150;

export const progressQuery = 'progress';
/**
 * A site operation started by a rollout tells the rollout how it ended, by this signal to the rollout's workflow id:
 * the rollout continues as new without waiting for its sites, and a later run learns of them only this way.
 */
export const rolloutSiteEndedSignal = 'rolloutSiteEnded';
/** Several sites' ends in one signal: how a worker sends the reports its site operations make close together. */
export const rolloutSitesEndedSignal = 'rolloutSitesEnded';
export const pauseSignal = 'pause';
export const resumeSignal = 'resume';

/** Operators' changes to a running rollout: Temporal updates, each validated by the rollout before it applies. */
export const rolloutUpdates = {
  pause: 'pauseRollout',
  resume: 'resumeRollout',
  approve: 'approveRollout',
  setMaxConcurrency: 'setRolloutMaxConcurrency',
} as const;
export const rolloutQuery = 'rollout';

/** A site's host as an Ironic node: `<site>-<host>`, so that names never collide across sites. */
export function ironicNodeName(site: string, host: string): string {
  return `${site}-${host}`;
}

/** The inventory secret holding a site's application-cluster kubeconfig, however the cluster was made. */
export function kubeconfigSecretName(site: string): string {
  return `${site}-kubeconfig`;
}
