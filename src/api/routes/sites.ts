import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { apiVersion } from '../../domain/meta.ts';
import { ResourceName } from '../../domain/names.ts';
import { LabelSelector } from '../../domain/selector.ts';
import { Site } from '../../domain/site.ts';
import { type Store, StoreError } from '../../store/index.ts';
import type { StoredObject } from '../../store/resources.ts';
import type { TokenAuthority } from '../auth.ts';
import { Failure } from '../errors.ts';

type StoredSite = StoredObject<Site['spec'], NonNullable<Site['status']>>;

const toSite = (s: StoredSite) => ({ apiVersion, kind: 'Site' as const, ...s });

const SiteOut = z.looseObject({
  apiVersion: z.string(),
  kind: z.literal('Site'),
  metadata: z.looseObject({}),
  spec: z.looseObject({}),
});
const SiteList = z.object({ items: z.array(SiteOut), continue: z.string().optional() });
const ListQuery = z.strictObject({
  labelSelector: LabelSelector.optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(500),
  continue: z.string().max(512).optional(),
});

/** Sites: what the operator declares. A site's profile must exist when the site names it. */
export interface SiteRouteDeps {
  store: Store;
  auth: TokenAuthority;
  /**
   * Starts the reconcile of an installed site whose hosts changed: adding a host to the site's list is all an
   * operator does. Absent, the change waits for an explicit reconcile.
   */
  startReconcile?: (site: string) => Promise<{ workflowId: string }>;
}

/** Host names as a sorted key, to tell a change of hosts from any other edit. */
const hostNames = (spec: Site['spec']): string =>
  spec.hosts
    .map((h) => h.name)
    .sort()
    .join(',');

export function siteRoutes(deps: SiteRouteDeps): FastifyPluginAsyncZod {
  const { store, auth } = deps;

  async function checkProfile(site: Site): Promise<void> {
    const { name, version } = site.spec.softwareProfile;
    await store.profiles.get(name, version).catch((err: unknown) => {
      if (err instanceof StoreError && err.code === 'NotFound') {
        throw new StoreError(
          'MissingReference',
          `software profile ${name} ${version} does not exist`,
          'spec.softwareProfile',
        );
      }
      throw err;
    });
  }

  return async (app) => {
    const tags = ['sites'];
    const security = [{ bearer: [] }];
    app.post(
      '/v1/sites',
      {
        preHandler: auth.require('write'),
        schema: {
          tags,
          security,
          summary: 'Create a site',
          body: Site,
          response: { 201: SiteOut, 409: Failure, 422: Failure },
        },
      },
      async (request, reply) => {
        await checkProfile(request.body);
        const { metadata, spec } = request.body;
        const created = await store.sites.create(
          {
            name: metadata.name,
            ...(metadata.labels && { labels: metadata.labels }),
            ...(metadata.annotations && { annotations: metadata.annotations }),
          },
          spec,
        );
        return reply.code(201).send(toSite(created));
      },
    );

    app.get(
      '/v1/sites',
      {
        preHandler: auth.require('read'),
        schema: { tags, security, summary: 'List sites', querystring: ListQuery, response: { 200: SiteList } },
      },
      async (request) => {
        const q = request.query;
        const page = await store.sites.list({
          ...(q.labelSelector && { matchLabels: q.labelSelector.matchLabels, hasLabels: q.labelSelector.hasLabels }),
          limit: q.limit,
          ...(q.continue !== undefined && { continue: q.continue }),
        });
        return { items: page.items.map(toSite), ...(page.continue !== undefined && { continue: page.continue }) };
      },
    );

    app.get(
      '/v1/sites/:name',
      {
        preHandler: auth.require('read'),
        schema: {
          tags,
          security,
          summary: 'Read a site',
          params: z.strictObject({ name: ResourceName }),
          response: { 200: SiteOut, 404: Failure },
        },
      },
      async (request) => toSite(await store.sites.get(request.params.name)),
    );

    app.put(
      '/v1/sites/:name',
      {
        preHandler: auth.require('write'),
        schema: {
          tags,
          security,
          summary: 'Replace a site (metadata.resourceVersion must be the one read)',
          params: z.strictObject({ name: ResourceName }),
          body: Site,
          response: { 200: SiteOut, 404: Failure, 409: Failure, 422: Failure },
        },
      },
      async (request) => {
        const { metadata, spec } = request.body;
        if (metadata.name !== request.params.name) {
          throw new StoreError(
            'Invalid',
            `metadata.name "${metadata.name}" differs from the URL's "${request.params.name}"`,
            'metadata.name',
          );
        }
        await checkProfile(request.body);
        const before = await store.sites.get(metadata.name);
        const updated = await store.sites.update(
          {
            name: metadata.name,
            resourceVersion: metadata.resourceVersion,
            ...(metadata.labels && { labels: metadata.labels }),
            ...(metadata.annotations && { annotations: metadata.annotations }),
          },
          spec,
        );
        const installed = before.status?.installedProfile !== undefined;
        if (!deps.startReconcile || !installed || hostNames(before.spec) === hostNames(spec)) return toSite(updated);
        // The spec is saved either way; a busy site gets its reconcile when the operator asks for it.
        const reconcile = await deps.startReconcile(metadata.name).then(
          (started) => ({ started: started.workflowId }),
          (err: unknown) => ({ notStarted: err instanceof Error ? err.message : String(err) }),
        );
        return { ...toSite(updated), reconcile };
      },
    );

    app.delete(
      '/v1/sites/:name',
      {
        preHandler: auth.require('write'),
        schema: {
          tags,
          security,
          summary: 'Delete a site record (its hosts are deprovisioned by an operation, not by this call)',
          params: z.strictObject({ name: ResourceName }),
          querystring: z.strictObject({ resourceVersion: z.string().regex(/^\d+$/).optional() }),
          response: { 204: z.null(), 404: Failure, 409: Failure },
        },
      },
      async (request, reply) => {
        await store.sites.delete(request.params.name, request.query.resourceVersion);
        return reply.code(204).send(null);
      },
    );
  };
}
