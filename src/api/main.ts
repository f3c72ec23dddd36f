import { parseConfig } from '../domain/config.ts';
import { createLogger } from '../observability/logger.ts';
import { openStore } from '../store/index.ts';
import { connectClient } from '../temporal/connection.ts';
import { buildApi } from './server.ts';

const config = parseConfig(process.env);
const logger = createLogger({ level: config.logLevel, name: 'icn-api' });
if (config.api.tokens.size === 0) logger.warn('ICN_API_TOKENS is empty: every route but /healthz will answer 401');
if (config.codec.allowAnonymous) logger.warn('the codec endpoint decodes without a token (ICN_CODEC_ALLOW_ANONYMOUS)');

const store = await openStore(config.store);
logger.info({ database: config.store.databaseUrl ? 'postgres' : 'embedded (PGlite)' }, 'store opened');
const temporal = await connectClient(config);
const app = await buildApi({ config, temporal, store, logger });
await app.listen({ host: config.api.host, port: config.api.port });

const shutdown = async () => {
  await app.close();
  await store.close();
  await temporal.connection.close();
  process.exit(0);
};
process.once('SIGINT', () => void shutdown());
process.once('SIGTERM', () => void shutdown());
