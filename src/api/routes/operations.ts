import { randomUUID } from 'node:crypto';
import {
  type Client,
  isGrpcDeadlineError,
  WorkflowUpdateFailedError,
  WorkflowUpdateRPCTimeoutOrCancelledError,
} from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { FastifyReply } from 'fastify';
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ResourceName } from '../../domain/names.ts';
import {
  InstallRequest,
  OperationStatus,
  SiteOperationType,
  type FleetRolloutInput,
  PatchRequest,
  RolloutConcurrency,
  RolloutPause,
  rolloutQuery,
  RolloutRequest,
  RolloutResume,
  rolloutUpdates,
  RolloutView,
  siteOperationId,
  UpgradeRequest,
  workflowTypes,
} from '../../domain/operations.ts';
import { type Store, StoreError } from '../../store/index.ts';
import { operationAttribute, rolloutAttribute } from '../../temporal/search-attributes.ts';
import type { TokenAuthority } from '../auth.ts';
import { Failure } from '../errors.ts';
import { siteOperationStarter } from '../site-operations.ts';
import { operationStatus } from '../temporal-status.ts';

/** An update the server gave up waiting for: the workflow did not take it in time (no worker, or a busy one). */
const isDeadlineExceeded = (err: unknown): boolean =>
  err instanceof WorkflowUpdateRPCTimeoutOrCancelledError ||
  isGrpcDeadlineError(err) ||
  (err instanceof Error && isGrpcDeadlineError(err.cause));

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
    // A rollout started here has a UUID; one started by a schedule has the schedule's name and timestamp.
    const RolloutParams = z.strictObject({
      id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9:._-]{0,199}$/, 'must be a rollout id'),
    });
    const rolloutHandle = (id: string) => temporal.workflow.getHandle(`rollout/${id}`);
    const RolloutStatus = OperationStatus.extend({ rollout: RolloutView.optional() });
    const controlled = { 200: RolloutView, 404: Failure, 409: Failure, 422: Failure, 504: Failure };

    /** Canaries must be among the sites selected: a typo would otherwise fail the rollout once it runs. */
    async function checkCanaries(request: RolloutRequest): Promise<void> {
      const { selector, strategy } = request;
      const named = selector.names && new Set(selector.names);
      for (const [i, name] of strategy.canarySites.entries()) {
        const site = await store.sites.find(name);
        const labels = site?.metadata.labels ?? {};
        const matches = Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v);
        if (!site || !matches || (named && !named.has(name))) {
          throw new StoreError(
            'MissingReference',
            site ? `canary site "${name}" is not among the selected sites` : `canary site "${name}" does not exist`,
            `strategy.canarySites.${i}`,
          );
        }
      }
    }

    /**
     * An operator's change to a running rollout, as a Temporal update: the rollout validates it against its state
     * and answers with its state after the change, or says why it refused (409: not now; 422: not a valid value).
     */
    async function control(id: string, update: string, arg: object | undefined, reply: FastifyReply) {
      const handle = rolloutHandle(id);
      const d = await handle.describe();
      if (d.status.name !== 'RUNNING') {
        return reply.code(409).send({ error: 'Conflict', message: `rollout ${id} has ended (${d.status.name})` });
      }
      try {
        const view = await temporal.withDeadline(Date.now() + 15_000, () =>
          handle.executeUpdate<RolloutView, [object]>(update, { args: [arg ?? {}] }),
        );
        return await reply.code(200).send(view);
      } catch (err) {
        if (err instanceof WorkflowUpdateFailedError && err.cause instanceof ApplicationFailure) {
          const invalid = err.cause.type === 'InvalidRolloutUpdate';
          return reply
            .code(invalid ? 422 : 409)
            .send({ error: invalid ? 'InvalidUpdate' : 'Conflict', message: err.cause.message });
        }
        if (isDeadlineExceeded(err)) {
          return reply
            .code(504)
            .send({ error: 'Timeout', message: `rollout ${id} did not answer within 15 s; is a worker running?` });
        }
        throw err;
      }
    }

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
        if (profile) {
          await store.profiles.get(profile.name, profile.version).catch((err: unknown) => {
            if (err instanceof StoreError && err.code === 'NotFound') {
              throw new StoreError(
                'MissingReference',
                `software profile ${profile.name} ${profile.version} does not exist`,
                'profile',
              );
            }
            throw err;
          });
        }
        await checkCanaries(request.body);
        const rolloutId = randomUUID();
        const input: FleetRolloutInput = { rolloutId, request: request.body };
        const handle = await temporal.workflow.start(workflowTypes.rollout, {
          taskQueue,
          workflowId: `rollout/${rolloutId}`,
          args: [input],
          typedSearchAttributes: [
            { key: rolloutAttribute, value: rolloutId },
            { key: operationAttribute, value: 'rollout' },
          ],
        });
        return reply.code(202).send({ rolloutId, workflowId: handle.workflowId, runId: handle.firstExecutionRunId });
      },
    );

    app.get(
      '/v1/rollouts',
      {
        preHandler: auth.require('read'),
        schema: {
          tags: rolloutTags,
          security,
          summary: 'Rollouts, newest first, scheduled runs included (from Temporal visibility)',
          response: {
            200: z.object({
              items: z.array(
                z.object({
                  rolloutId: z.string(),
                  status: z.string(),
                  startTime: z.string(),
                  closeTime: z.string().optional(),
                }),
              ),
            }),
          },
        },
      },
      async () => {
        const items: { rolloutId: string; status: string; startTime: string; closeTime?: string }[] = [];
        // Continued-as-new runs share their workflow id: the newest run speaks for the rollout.
        const seen = new Set<string>();
        for await (const w of temporal.workflow.list({
          query: `WorkflowType = '${workflowTypes.rollout}' AND ExecutionStatus != 'ContinuedAsNew'`,
        })) {
          if (seen.has(w.workflowId)) continue;
          seen.add(w.workflowId);
          items.push({
            rolloutId: w.workflowId.replace(/^rollout\//, ''),
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

    app.get(
      '/v1/rollouts/:id',
      {
        preHandler: auth.require('read'),
        schema: {
          tags: rolloutTags,
          security,
          summary: "A rollout's status, progress (sites pending, running, succeeded, failed, busy) and settings",
          params: RolloutParams,
          response: { 200: RolloutStatus, 404: Failure },
        },
      },
      async (request) => {
        const handle = rolloutHandle(request.params.id);
        const status = await operationStatus(temporal, handle);
        const rollout = await temporal
          .withDeadline(Date.now() + 2000, () => handle.query<RolloutView>(rolloutQuery))
          .catch(() => undefined);
        return rollout ? { ...status, rollout } : status;
      },
    );

    const updates = [
      ['pause', rolloutUpdates.pause, RolloutPause, 'Pause a rollout: no other site starts; running ones finish'],
      ['resume', rolloutUpdates.resume, RolloutResume, 'Resume a paused rollout, accepting the failures so far'],
      ['approve', rolloutUpdates.approve, undefined, 'Approve the rest of a rollout once its canaries succeeded'],
      ['concurrency', rolloutUpdates.setMaxConcurrency, RolloutConcurrency, 'Change how many sites run at once'],
    ] as const;
    for (const [action, update, body, summary] of updates) {
      app.post(
        `/v1/rollouts/:id/${action}`,
        {
          preHandler: auth.require('operate'),
          schema: {
            tags: rolloutTags,
            security,
            summary,
            params: RolloutParams,
            ...(body && { body: body.optional() }),
            response: controlled,
          },
        },
        async (request, reply) =>
          control(request.params.id, update, body ? ((request.body as object | undefined) ?? {}) : undefined, reply),
      );
    }

    app.post(
      '/v1/rollouts/:id/cancel',
      {
        preHandler: auth.require('operate'),
        schema: {
          tags: rolloutTags,
          security,
          summary: 'Cancel a rollout: no other site starts, running ones are cancelled (they compensate)',
          params: RolloutParams,
          response: { 202: z.object({ rolloutId: z.string() }), 404: Failure, 409: Failure },
        },
      },
      async (request, reply) => {
        const handle = rolloutHandle(request.params.id);
        const d = await handle.describe();
        if (d.status.name !== 'RUNNING') {
          return reply
            .code(409)
            .send({ error: 'Conflict', message: `rollout ${request.params.id} has ended (${d.status.name})` });
        }
        // Temporal's own cancellation, not an update: only it ends the rollout as CANCELLED, and it reaches a
        // rollout whatever it is waiting for.
        await handle.cancel();
        return reply.code(202).send({ rolloutId: request.params.id });
      },
    );
  };
}
