import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { apiVersion } from '../../domain/meta.ts';
import { ResourceName } from '../../domain/names.ts';
import { Secret, SecretSummary } from '../../domain/secret.ts';
import { type Store, StoreError } from '../../store/index.ts';
import type { SecretSummary as StoredSummary } from '../../store/secrets.ts';
import type { TokenAuthority } from '../auth.ts';
import { Failure } from '../errors.ts';

const toSummary = (s: StoredSummary) => ({ apiVersion, kind: 'Secret' as const, ...s });

/** Write-only: values go in, only the type and key names ever come out. */
export function secretRoutes(deps: { store: Store; auth: TokenAuthority }): FastifyPluginAsyncZod {
  const { store, auth } = deps;
  return async (app) => {
    const tags = ['secrets'];
    const security = [{ bearer: [] }];
    app.put(
      '/v1/secrets/:name',
      {
        preHandler: auth.require('write'),
        schema: {
          tags,
          security,
          summary: 'Create or replace a secret (stored encrypted, never returned)',
          params: z.strictObject({ name: ResourceName }),
          body: Secret,
          response: { 200: SecretSummary, 400: Failure },
        },
      },
      async (request) => {
        const { metadata, type, stringData } = request.body;
        if (metadata.name !== request.params.name) {
          throw new StoreError(
            'Invalid',
            `metadata.name "${metadata.name}" differs from the URL's "${request.params.name}"`,
            'metadata.name',
          );
        }
        return toSummary(
          await store.secrets.put(
            { name: metadata.name, ...(metadata.labels && { labels: metadata.labels }) },
            type,
            stringData,
          ),
        );
      },
    );
    app.get(
      '/v1/secrets',
      {
        preHandler: auth.require('read'),
        schema: {
          tags,
          security,
          summary: 'List secrets (no values)',
          response: { 200: z.object({ items: z.array(SecretSummary) }) },
        },
      },
      async () => ({ items: (await store.secrets.list()).map(toSummary) }),
    );
    app.get(
      '/v1/secrets/:name',
      {
        preHandler: auth.require('read'),
        schema: {
          tags,
          security,
          summary: 'Read a secret summary (no values)',
          params: z.strictObject({ name: ResourceName }),
          response: { 200: SecretSummary, 404: Failure },
        },
      },
      async (request) => toSummary(await store.secrets.get(request.params.name)),
    );
    app.delete(
      '/v1/secrets/:name',
      {
        preHandler: auth.require('write'),
        schema: {
          tags,
          security,
          summary: 'Delete a secret',
          params: z.strictObject({ name: ResourceName }),
          response: { 204: z.null(), 404: Failure },
        },
      },
      async (request, reply) => {
        await store.secrets.delete(request.params.name);
        return reply.code(204).send(null);
      },
    );
  };
}
