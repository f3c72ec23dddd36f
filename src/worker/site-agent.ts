/**
 * The site agent (ICN's infra-local-controller side): a worker at the site, for sites in agent mode `local`. It
 * serves only the site's task queue and only the activities that reach inside the site (Ironic, BPA, the clusters,
 * helm, host maintenance); the workflows and the inventory activities stay with the global controller. It dials out
 * to Temporal and listens on no port, so a site behind NAT or a firewall needs no inbound rule.
 */
import type { Worker } from '@temporalio/worker';
import { createSiteLocalActivities } from '../activities/site.ts';
import { type Config, ConfigError } from '../domain/config.ts';
import type { Logger } from '../observability/logger.ts';
import type { Store } from '../store/index.ts';
import { connectWorker } from '../temporal/connection.ts';
import { realPeers } from './peers.ts';
import { createWorker, type WorkerSetup } from './worker.ts';

/** Must match siteTaskQueue in src/workflows/site-activities-options.ts, which sends the site's activities here. */
export function siteAgentTaskQueue(site: string): string {
  return `site.${site}`;
}

/** The agent's worker: no workflows, the given activities, on the site's queue. */
export function createSiteAgentWorker(
  setup: Omit<WorkerSetup, 'taskQueue' | 'workflows' | 'workflowBundle'> & { site: string },
): Promise<Worker> {
  const { site, ...rest } = setup;
  return createWorker({ ...rest, taskQueue: siteAgentTaskQueue(site), workflows: false });
}

/** The site the agent serves; a ConfigError naming ICN_SITE without one. */
export function siteAgentSite(config: Config): string {
  if (config.site === undefined) {
    throw new ConfigError(
      'invalid configuration:\n  ICN_SITE: a site agent serves one site; name it (its Site resource name)',
    );
  }
  return config.site;
}

export interface SiteAgentOptions {
  /**
   * The site's secrets (BMC credentials, SSH keys, kubeconfigs, BPA token) and artifact contents. In this version it
   * is the global controller's own store (DATABASE_URL and ICN_ARTIFACT_DIR), which also takes the hosts' state
   * writes; a later version can hand the agent a store scoped to its site's secrets and artifacts instead.
   */
  store: Store;
  logger: Logger;
}

export async function startSiteAgent(
  config: Config,
  opts: SiteAgentOptions,
): Promise<{ worker: Worker; close: () => Promise<void> }> {
  const site = siteAgentSite(config);
  const connection = await connectWorker(config);
  try {
    const worker = await createSiteAgentWorker({
      connection,
      namespace: config.temporal.namespace,
      codecKeys: config.codec,
      site,
      tuning: config.workerTuning,
      activities: createSiteLocalActivities(realPeers(opts.store, { helmBinary: config.helmBinary })),
    });
    opts.logger.info(
      { site, taskQueue: siteAgentTaskQueue(site), namespace: config.temporal.namespace },
      'site agent started',
    );
    return { worker, close: () => connection.close() };
  } catch (err) {
    await connection.close();
    throw err;
  }
}
