import { ConfigError, parseConfig } from '../domain/config.ts';
import { createLogger } from '../observability/logger.ts';
import { openStore } from '../store/index.ts';
import { startWorkerHealth } from './health-server.ts';
import { installRuntimeLogger } from './runtime-logger.ts';
import { startWorker } from './run.ts';

const config = parseConfig(process.env);
if (!config.store.databaseUrl) {
  throw new ConfigError(
    'invalid configuration:\n  DATABASE_URL: a standalone worker shares the inventory with the API through PostgreSQL; ' +
      'with the embedded store run API and worker in one process (src/worker/controller.ts)',
  );
}
const logger = createLogger({ level: config.logLevel, name: 'icn-worker' });
installRuntimeLogger(logger, config);
const store = await openStore(config.store);
const { worker, close } = await startWorker(config, store, logger);
const health =
  config.workerHealthPort === undefined
    ? undefined
    : await startWorkerHealth(worker, { port: config.workerHealthPort });
// The SDK shuts the worker down gracefully on SIGINT/SIGTERM; run() resolves once in-flight tasks are done.
await worker.run();
await health?.close();
await close();
await store.close();
logger.info('worker stopped');
