import { ConfigError, parseConfig } from '../domain/config.ts';
import { createLogger } from '../observability/logger.ts';
import { openStore } from '../store/index.ts';
import { startWorkerHealth } from './health-server.ts';
import { installRuntimeLogger } from './runtime-logger.ts';
import { siteAgentSite, startSiteAgent } from './site-agent.ts';

const config = parseConfig(process.env);
const site = siteAgentSite(config);
if (!config.store.databaseUrl) {
  throw new ConfigError(
    'invalid configuration:\n  DATABASE_URL: the site agent reads the site secrets and artifacts from the ' +
      "global controller's PostgreSQL (an embedded store is one process's only)",
  );
}
const logger = createLogger({ level: config.logLevel, name: 'icn-site-agent' }).child({ site });
installRuntimeLogger(logger, config);
const store = await openStore(config.store);
const { worker, close } = await startSiteAgent(config, { store, logger });
const health =
  config.workerHealthPort === undefined
    ? undefined
    : await startWorkerHealth(worker, { port: config.workerHealthPort });
// The SDK shuts the worker down gracefully on SIGINT/SIGTERM; run() resolves once in-flight activities are done.
await worker.run();
await health?.close();
await close();
await store.close();
logger.info('site agent stopped');
