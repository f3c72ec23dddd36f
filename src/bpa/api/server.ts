/**
 * The BPA's HTTP API (site-local): artifacts with resumable uploads, install jobs with per-host progress (polled or
 * streamed as NDJSON), kubeadm cluster bring-up and its kubeconfig, and write-only SSH key secrets. Bearer tokens
 * with scopes: read lists, write uploads and keys, operate runs jobs and reads kubeconfigs.
 */
import swagger from '@fastify/swagger';
import Fastify, { type FastifyBaseLogger } from 'fastify';
import {
  jsonSchemaTransform,
  serializerCompiler,
  validatorCompiler,
  type ZodTypeProvider,
} from 'fastify-type-provider-zod';
import { z } from 'zod';
import { TokenAuthority } from '../../api/auth.ts';
import { installErrorHandler } from '../../api/errors.ts';
import type { Logger } from '../../observability/logger.ts';
import type { Bpa } from '../index.ts';
import { artifactRoutes } from './artifacts.ts';
import { clusterRoutes } from './clusters.ts';
import { jobRoutes } from './jobs.ts';
import { secretRoutes } from './secrets.ts';

export async function buildBpaApi(bpa: Bpa, logger: Logger) {
  const loggerInstance: FastifyBaseLogger = logger;
  const app = Fastify({
    loggerInstance,
    // Job specs name up to 10,000 hosts; artifact bodies are streams and not bound by this.
    bodyLimit: 16 * 1024 * 1024,
    ajv: { customOptions: { removeAdditional: false } },
  }).withTypeProvider<ZodTypeProvider>();
  app.setValidatorCompiler(validatorCompiler);
  app.setSerializerCompiler(serializerCompiler);
  installErrorHandler(app);

  await app.register(swagger, {
    openapi: {
      info: { title: 'icn-orchestrator BPA API', version: '0.1.0' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } },
    },
    transform: jsonSchemaTransform,
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  app.get(
    '/healthz',
    { schema: { tags: ['health'], summary: 'Liveness', response: { 200: z.object({ status: z.literal('ok') }) } } },
    async () => ({ status: 'ok' as const }),
  );

  const auth = new TokenAuthority(bpa.config.tokens);
  await app.register(artifactRoutes({ artifacts: bpa.artifacts, auth }));
  await app.register(jobRoutes({ engine: bpa.engine, auth }));
  await app.register(clusterRoutes({ engine: bpa.engine, dataDir: bpa.config.dataDir, auth }));
  await app.register(secretRoutes({ secrets: bpa.secrets, ssh: bpa.ssh, auth }));
  return app;
}
