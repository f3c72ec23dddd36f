import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { apiVersion, SemVer } from '../../domain/meta.ts';
import { ResourceName } from '../../domain/names.ts';
import { SoftwareProfile } from '../../domain/software-profile.ts';
import type { Store } from '../../store/index.ts';
import type { StoredProfile } from '../../store/profiles.ts';
import type { TokenAuthority } from '../auth.ts';
import { Failure } from '../errors.ts';

const toProfile = (p: StoredProfile) => ({ apiVersion, kind: 'SoftwareProfile' as const, ...p });
const ProfileOut = z.looseObject({
  apiVersion: z.string(),
  kind: z.literal('SoftwareProfile'),
  metadata: z.looseObject({}),
  spec: z.looseObject({}),
});
const Key = z.strictObject({ name: ResourceName, version: SemVer });

/** Software profiles: immutable per version; creating one checks that every artifact it names is uploaded. */
export function profileRoutes(deps: { store: Store; auth: TokenAuthority }): FastifyPluginAsyncZod {
  const { store, auth } = deps;
  return async (app) => {
    const tags = ['profiles'];
    const security = [{ bearer: [] }];
    app.post(
      '/v1/profiles',
      {
        preHandler: auth.require('write'),
        schema: {
          tags,
          security,
          summary: 'Publish a software profile version (the same spec again is a no-op)',
          body: SoftwareProfile,
          response: { 200: ProfileOut, 201: ProfileOut, 409: Failure, 422: Failure },
        },
      },
      async (request, reply) => {
        const { metadata, spec } = request.body;
        const { profile, created } = await store.profiles.create(
          { name: metadata.name, ...(metadata.labels && { labels: metadata.labels }) },
          spec,
        );
        return reply.code(created ? 201 : 200).send(toProfile(profile));
      },
    );
    app.get(
      '/v1/profiles',
      {
        preHandler: auth.require('read'),
        schema: {
          tags,
          security,
          summary: 'List software profiles',
          querystring: z.strictObject({ name: ResourceName.optional() }),
          response: { 200: z.object({ items: z.array(ProfileOut) }) },
        },
      },
      async (request) => ({ items: (await store.profiles.list(request.query.name)).map(toProfile) }),
    );
    app.get(
      '/v1/profiles/:name/:version',
      {
        preHandler: auth.require('read'),
        schema: {
          tags,
          security,
          summary: 'Read a software profile version',
          params: Key,
          response: { 200: ProfileOut, 404: Failure },
        },
      },
      async (request) => toProfile(await store.profiles.get(request.params.name, request.params.version)),
    );
    app.delete(
      '/v1/profiles/:name/:version',
      {
        preHandler: auth.require('write'),
        schema: {
          tags,
          security,
          summary: 'Delete an unused software profile version',
          params: Key,
          response: { 204: z.null(), 404: Failure, 409: Failure },
        },
      },
      async (request, reply) => {
        await store.profiles.delete(request.params.name, request.params.version);
        return reply.code(204).send(null);
      },
    );
  };
}
