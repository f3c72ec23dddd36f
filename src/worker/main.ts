import { parseConfig } from '../domain/config.ts';
import { createActivities } from '../activities/index.ts';
import { createLogger } from '../observability/logger.ts';
import { connectWorker } from '../temporal/connection.ts';
import { installRuntimeLogger } from './runtime-logger.ts';
import { createWorker } from './worker.ts';

const config = parseConfig(process.env);
const logger = createLogger({ level: config.logLevel, name: 'icn-worker' });
installRuntimeLogger(logger);

const connection = await connectWorker(config);
const worker = await createWorker({
  connection,
  namespace: config.temporal.namespace,
  codecKeys: config.codec,
  taskQueue: config.taskQueue,
  activities: createActivities({ fetch: globalThis.fetch, probeTimeoutMs: 5000 }),
});
logger.info({ taskQueue: config.taskQueue, namespace: config.temporal.namespace }, 'worker started');
// The SDK shuts the worker down gracefully on SIGINT/SIGTERM; run() resolves once in-flight tasks are done.
await worker.run();
await connection.close();
logger.info('worker stopped');
