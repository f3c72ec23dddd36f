import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ResourceName } from '../../domain/names.ts';
import {
  InstallRequest,
  OperationStatus,
  SiteOperationType,
  PatchRequest,
  pauseSignal,
  resumeSignal,
  RolloutRequest,
  siteOperationId,
  UpgradeRequest,
  workflowTypes,
} from '../../domain/operations.ts';
import { type Store, StoreError } from '../../store/index.ts';
import { operationAttribute, rolloutAttribute, siteAttribute } from '../../temporal/search-attributes.ts';
import type { TokenAuthority } from '../auth.ts';
import { Failure } from '../errors.ts';
import { siteOperationStarter } from '../site-operations.ts';
import { operationStatus } from '../temporal-status.ts';

const Started = z.object({ workflowId: z.string(), runId: z.string() });

export interface OperationRouteDeps {
  store: Store;
  temporal: Client;
  taskQueue: string;
  auth: TokenAuthority;
}

/** Install, patch, upgrade of one site, and rollouts across many: each a workflow whose id is its business key. */
export function operationRoutes(deps: OperationRouteDeps): FastifyPluginAsyncZod {
  const { store, temporal, taskQueue, auth } = deps;
  const security = [{ bearer: [] }];

  const startSiteOperation = siteOperationStarter({ store, temporal, taskQueue });

  return async (app) => {
    const siteTags = ['operations'];
    const Params = z.strictObject({ name: ResourceName });
    const started = { 202: Started, 404: Failure, 409: Failure, 422: Failure };

    app.post(
      '/v1/sites/:name/install',
      {
        preHandler: auth.require('operate'),
        schema: {
          tags: siteTags,
          security,
          summary: 'Install a site',
          params: Params,
          body: InstallRequest,
          response: started,
        },
      },
      async (request, reply) =>
        reply.code(202).send(await startSiteOperation(request.params.name, 'install', request.body)),
    );

    app.post(
      '/v1/sites/:name/patch',
      {
        preHandler: auth.require('operate'),
        schema: {
          tags: siteTags,
          security,
          summary: 'Patch a site to a software profile',
          params: Params,
          body: PatchRequest,
          response: started,
        },
      },
      async (request, reply) => {
        const { name, version } = request.body.profile;
        await store.profiles.get(name, version).catch((err: unknown) => {
          if (err instanceof StoreError && err.code === 'NotFound') {
            throw new StoreError('MissingReference', `software profile ${name} ${version} does not exist`, 'profile');
          }
          throw err;
        });
        return reply.code(202).send(await startSiteOperation(request.params.name, 'patch', request.body));
      },
    );

    app.post(
      '/v1/sites/:name/upgrade',
      {
        preHandler: auth.require('operate'),
        schema: {
          tags: siteTags,
          security,
          summary: "Upgrade a site's Kubernetes",
          params: Params,
          body: UpgradeRequest,
          response: started,
        },
      },
      async (request, reply) =>
        reply.code(202).send(await startSiteOperation(request.params.name, 'upgrade', request.body)),
    );

    app.post(
      '/v1/sites/:name/reconcile',
      {
        preHandler: auth.require('operate'),
        schema: {
          tags: siteTags,
          security,
          summary: "Bring an installed site's hosts in line with its spec (hosts added or removed)",
          params: Params,
          body: z.strictObject({}).optional(),
          response: started,
        },
      },
      async (request, reply) => reply.code(202).send(await startSiteOperation(request.params.name, 'reconcile', {})),
    );

    app.get(
      '/v1/sites/:name/operations',
      {
        preHandler: auth.require('read'),
        schema: {
          tags: siteTags,
          security,
          summary: "A site's operations, newest first (from Temporal visibility)",
          params: Params,
        },
      },
      async (request) => {
        const items: {
          workflowId: string;
          runId: string;
          type: string;
          status: string;
          startTime: string;
          closeTime?: string;
        }[] = [];
        for await (const w of temporal.workflow.list({
          query: `IcnSite = '${request.params.name}'`,
        })) {
          items.push({
            workflowId: w.workflowId,
            runId: w.runId,
            type: w.type,
            status: w.status.name,
            startTime: w.startTime.toISOString(),
            ...(w.closeTime && { closeTime: w.closeTime.toISOString() }),
          });
          if (items.length >= 1000) break;
        }
        items.sort((a, b) => b.startTime.localeCompare(a.startTime));
        return { items: items.slice(0, 100) };
      },
    );

    const OpParams = z.strictObject({ name: ResourceName, operation: SiteOperationType });
    app.get(
      '/v1/sites/:name/operations/:operation',
      {
        preHandler: auth.require('read'),
        schema: {
          tags: siteTags,
          security,
          summary: "An operation's status, progress and result",
          params: OpParams,
          response: { 200: OperationStatus, 404: Failure },
        },
      },
      async (request) =>
        operationStatus(
          temporal,
          temporal.workflow.getHandle(siteOperationId(request.params.name, request.params.operation)),
        ),
    );

    app.post(
      '/v1/sites/:name/operations/:operation/cancel',
      {
        preHandler: auth.require('operate'),
        schema: {
          tags: siteTags,
          security,
          summary: 'Cancel a running operation (its compensations run)',
          params: OpParams,
          response: { 202: z.object({ workflowId: z.string() }), 404: Failure },
        },
      },
      async (request, reply) => {
        const handle = temporal.workflow.getHandle(siteOperationId(request.params.name, request.params.operation));
        await handle.cancel();
        return reply.code(202).send({ workflowId: handle.workflowId });
      },
    );

    // Rollouts: one workflow fanning out over the sites a selector picks.
    const rolloutTags = ['rollouts'];
    const RolloutParams = z.strictObject({ id: z.uuid() });
    const rolloutHandle = (id: string) => temporal.workflow.getHandle(`rollout/${id}`);

    app.post(
      '/v1/rollouts',
      {
        preHandler: auth.require('operate'),
        schema: {
          tags: rolloutTags,
          security,
          summary: 'Start a rollout across the selected sites',
          body: RolloutRequest,
          response: { 202: Started.extend({ rolloutId: z.string() }), 422: Failure },
        },
      },
      async (request, reply) => {
        const { profile } = request.body;
        if (profile) await store.profiles.get(profile.name, profile.version);
        const rolloutId = randomUUID();
        const handle = await temporal.workflow.start(workflowTypes.rollout, {
          taskQueue,
          workflowId: `rollout/${rolloutId}`,
          args: [{ rolloutId, request: request.body }],
          typedSearchAttributes: [
            { key: rolloutAttribute, value: rolloutId },
            { key: operationAttribute, value: 'rollout' },
          ],
        });
        return reply.code(202).send({ rolloutId, workflowId: handle.workflowId, runId: handle.firstExecutionRunId });
      },
    );

    app.get(
      '/v1/rollouts/:id',
      {
        preHandler: auth.require('read'),
        schema: {
          tags: rolloutTags,
          security,
          summary: "A rollout's status and progress",
          params: RolloutParams,
          response: { 200: OperationStatus, 404: Failure },
        },
      },
      async (request) => operationStatus(temporal, rolloutHandle(request.params.id)),
    );

    for (const [action, signal] of [
      ['pause', pauseSignal],
      ['resume', resumeSignal],
    ] as const) {
      app.post(
        `/v1/rollouts/:id/${action}`,
        {
          preHandler: auth.require('operate'),
          schema: {
            tags: rolloutTags,
            security,
            summary: `${action} a rollout`,
            params: RolloutParams,
            response: { 202: z.object({ rolloutId: z.string() }), 404: Failure },
          },
        },
        async (request, reply) => {
          await rolloutHandle(request.params.id).signal(signal);
          return reply.code(202).send({ rolloutId: request.params.id });
        },
      );
    }

    app.post(
      '/v1/rollouts/:id/cancel',
      {
        preHandler: auth.require('operate'),
        schema: {
          tags: rolloutTags,
          security,
          summary: 'Cancel a rollout (running sites compensate)',
          params: RolloutParams,
          response: { 202: z.object({ rolloutId: z.string() }), 404: Failure },
        },
      },
      async (request, reply) => {
        await rolloutHandle(request.params.id).cancel();
        return reply.code(202).send({ rolloutId: request.params.id });
      },
    );
  };
}
