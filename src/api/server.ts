import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { Client } from '@temporalio/client';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import {
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import type { Config } from '../domain/config.ts';
import type { Logger } from '../observability/logger.ts';
import { AesGcmPayloadCodec } from '../temporal/codec.ts';
import type { Store } from '../store/index.ts';
import { TokenAuthority } from './auth.ts';
import { installMetrics } from './metrics.ts';
import { installErrorHandler } from './errors.ts';
import { codecRoutes } from './routes/codec.ts';
import { artifactRoutes } from './routes/artifacts.ts';
import { healthRoutes } from './routes/health.ts';
import { operationRoutes } from './routes/operations.ts';
import { siteOperationStarter } from './site-operations.ts';
import { scheduleRoutes } from './routes/schedules.ts';
import { profileRoutes } from './routes/profiles.ts';
import { secretRoutes } from './routes/secrets.ts';
import { siteRoutes } from './routes/sites.ts';
import { siteHealthRoutes } from './routes/site-health.ts';

export interface ApiDeps {
  config: Pick<Config, 'api' | 'codec' | 'taskQueue'>;
  temporal: Client;
  store: Store;
  logger: Logger;
}

/** The trigger API: built without listening so that tests drive it with inject() or on a free port. */
export async function buildApi(deps: ApiDeps) {
  // Typed as Fastify's logger so the instance keeps Fastify's own logger generic (pino's is stricter).
  const loggerInstance: FastifyBaseLogger = deps.logger;
  const app = Fastify({
    loggerInstance,
    bodyLimit: 1024 * 1024,
    // Unknown query fields are refused by the route schemas; keep Fastify from coercing them silently.
    ajv: { customOptions: { removeAdditional: false } },
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandler(app);
  installMetrics(app);

  await app.register(swagger, {
    openapi: {
      info: { title: 'icn-orchestrator trigger API', version: '0.1.0' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    transform: jsonSchemaTransform,
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  await app.register(swaggerUi, { routePrefix: '/docs' });

  const auth = new TokenAuthority(deps.config.api.tokens);
  await app.register(healthRoutes({ temporal: deps.temporal, store: deps.store }));
  const startSiteOperation = siteOperationStarter({
    store: deps.store,
    temporal: deps.temporal,
    taskQueue: deps.config.taskQueue,
  });
  await app.register(
    siteRoutes({ store: deps.store, auth, startReconcile: (site) => startSiteOperation(site, 'reconcile', {}) }),
  );
  await app.register(profileRoutes({ store: deps.store, auth }));
  await app.register(artifactRoutes({ store: deps.store, auth }));
  await app.register(secretRoutes({ store: deps.store, auth }));
  await app.register(
    operationRoutes({ store: deps.store, temporal: deps.temporal, taskQueue: deps.config.taskQueue, auth }),
  );
  await app.register(scheduleRoutes({ temporal: deps.temporal, taskQueue: deps.config.taskQueue, auth }));
  await app.register(siteHealthRoutes({ temporal: deps.temporal, taskQueue: deps.config.taskQueue, auth }));
  await app.register(
    codecRoutes({
      codec: new AesGcmPayloadCodec(deps.config.codec),
      auth,
      corsOrigins: deps.config.codec.corsOrigins,
      allowAnonymous: deps.config.codec.allowAnonymous,
    }),
    { prefix: '/codec' },
  );
  return app;
}
