/** The BPA service: `node src/bpa/main.ts`, configured by ICN_BPA_* variables (see src/bpa/config.ts). */
import { createLogger } from '../observability/logger.ts';
import { buildBpaApi, openBpa, parseBpaConfig } from './index.ts';

const config = parseBpaConfig(process.env);
const logger = createLogger({ level: config.logLevel, name: 'icn-bpa' });
if (config.tokens.size === 0) logger.warn('ICN_BPA_TOKENS is empty: every route but /healthz will answer 401');

const bpa = await openBpa(config, logger);
const app = await buildBpaApi(bpa, logger);
const address = await app.listen({ host: config.host, port: config.port });
logger.info({ address, dataDir: config.dataDir }, 'BPA listening');

const shutdown = async () => {
  await app.close();
  await bpa.close();
  process.exit(0);
};
process.once('SIGINT', () => void shutdown());
process.once('SIGTERM', () => void shutdown());
