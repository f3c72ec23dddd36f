import type { Config } from '../domain/config.ts';
import type { Logger } from '../observability/logger.ts';
import { processTracing, withClientTracing } from '../observability/tracing.ts';
import type { Store } from '../store/index.ts';
import { connectClient } from '../temporal/connection.ts';
import { buildApi } from './server.ts';

/** The trigger API listening on its configured address, over a store the caller opened (and closes). */
export async function startApi(config: Config, store: Store, logger: Logger) {
  if (config.api.tokens.size === 0) logger.warn('ICN_API_TOKENS is empty: every route but /healthz will answer 401');
  if (config.codec.allowAnonymous)
    logger.warn('the codec endpoint decodes without a token (ICN_CODEC_ALLOW_ANONYMOUS)');
  logger.info({ database: config.store.databaseUrl ? 'postgres' : 'embedded (PGlite)' }, 'store opened');
  const tracing = processTracing('icn-api');
  const temporal = withClientTracing(await connectClient(config), tracing);
  const app = await buildApi({ config, temporal, store, logger });
  await app.listen({ host: config.api.host, port: config.api.port });
  return {
    app,
    close: async () => {
      await app.close();
      await temporal.connection.close();
      await tracing?.flush();
    },
  };
}
