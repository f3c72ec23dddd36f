import { parseConfig } from '../domain/config.ts';
import { createLogger } from '../observability/logger.ts';
import { openStore } from '../store/index.ts';
import { startApi } from './run.ts';

const config = parseConfig(process.env);
const logger = createLogger({ level: config.logLevel, name: 'icn-api' });
const store = await openStore(config.store);
const api = await startApi(config, store, logger);

const shutdown = async () => {
  await api.close();
  await store.close();
  process.exit(0);
};
process.once('SIGINT', () => void shutdown());
process.once('SIGTERM', () => void shutdown());
