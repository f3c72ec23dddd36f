/**
 * The global controller in one process: the trigger API and the worker sharing one store. This is how the embedded
 * store (PGlite, one process only) runs, and a small deployment may run it too; larger ones run src/api/main.ts and
 * src/worker/main.ts apart, on PostgreSQL.
 */
import { buildApi } from '../api/server.ts';
import { parseConfig } from '../domain/config.ts';
import { createLogger } from '../observability/logger.ts';
import { openStore } from '../store/index.ts';
import { connectClient } from '../temporal/connection.ts';
import { installRuntimeLogger } from './runtime-logger.ts';
import { startWorker } from './run.ts';

const config = parseConfig(process.env);
const logger = createLogger({ level: config.logLevel, name: 'icn-controller' });
installRuntimeLogger(logger);
if (config.api.tokens.size === 0) logger.warn('ICN_API_TOKENS is empty: every route but /healthz will answer 401');
if (config.codec.allowAnonymous) logger.warn('the codec endpoint decodes without a token (ICN_CODEC_ALLOW_ANONYMOUS)');

const store = await openStore(config.store);
logger.info({ database: config.store.databaseUrl ? 'postgres' : 'embedded (PGlite)' }, 'store opened');
const temporal = await connectClient(config);
const api = await buildApi({ config, temporal, store, logger });
const { worker, close } = await startWorker(config, store, logger);
await api.listen({ host: config.api.host, port: config.api.port });

// The SDK stops the worker on SIGINT/SIGTERM; the API and the store close after it, so in-flight activities finish.
await worker.run();
await api.close();
await close();
await temporal.connection.close();
await store.close();
logger.info('controller stopped');
