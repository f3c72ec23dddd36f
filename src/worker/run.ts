import type { Worker } from '@temporalio/worker';
import { createActivities } from '../activities/index.ts';
import { createSiteActivities } from '../activities/site.ts';
import type { Config } from '../domain/config.ts';
import type { Logger } from '../observability/logger.ts';
import type { Store } from '../store/index.ts';
import { connectWorker } from '../temporal/connection.ts';
import { realPeers } from './peers.ts';
import { createWorker } from './worker.ts';

/** The global worker: every workflow, and the activities of the global queue and of central-mode sites. */
export async function startWorker(
  config: Config,
  store: Store,
  logger: Logger,
): Promise<{ worker: Worker; close: () => Promise<void> }> {
  const connection = await connectWorker(config);
  const worker = await createWorker({
    connection,
    namespace: config.temporal.namespace,
    codecKeys: config.codec,
    taskQueue: config.taskQueue,
    tuning: config.workerTuning,
    activities: {
      ...createActivities({ fetch: globalThis.fetch, probeTimeoutMs: 5000 }),
      ...createSiteActivities(realPeers(store, { helmBinary: config.helmBinary })),
    },
  });
  logger.info(
    { taskQueue: config.taskQueue, namespace: config.temporal.namespace, metricsPort: config.workerMetricsPort },
    'worker started',
  );
  return { worker, close: () => connection.close() };
}
