/**
 * The global controller in one process: the trigger API and the worker sharing one store. This is how the embedded
 * store (PGlite, one process only) runs, and a small deployment may run it too; larger ones run src/api/main.ts and
 * src/worker/main.ts apart, on PostgreSQL.
 */
import { startApi } from '../api/run.ts';
import { parseConfig } from '../domain/config.ts';
import { createLogger } from '../observability/logger.ts';
import { openStore } from '../store/index.ts';
import { startWorkerHealth } from './health-server.ts';
import { installRuntimeLogger } from './runtime-logger.ts';
import { startWorker } from './run.ts';

const config = parseConfig(process.env);
const logger = createLogger({ level: config.logLevel, name: 'icn-controller' });
installRuntimeLogger(logger, config);

const store = await openStore(config.store);
const { worker, close } = await startWorker(config, store, logger);
const api = await startApi(config, store, logger);
const health =
  config.workerHealthPort === undefined
    ? undefined
    : await startWorkerHealth(worker, { port: config.workerHealthPort });

// The SDK stops the worker on SIGINT/SIGTERM; the API and the store close after it, so in-flight activities finish.
await worker.run();
await health?.close();
await api.close();
await close();
await store.close();
logger.info('controller stopped');
