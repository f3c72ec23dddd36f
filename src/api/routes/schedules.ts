import { type Client, ScheduleNotFoundError } from '@temporalio/client';
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ResourceName } from '../../domain/names.ts';
import { RolloutRequest, ScheduleRequest, workflowTypes } from '../../domain/operations.ts';
import { StoreError } from '../../store/index.ts';
import { operationAttribute } from '../../temporal/search-attributes.ts';
import type { TokenAuthority } from '../auth.ts';
import { Failure } from '../errors.ts';

const ScheduleOut = z.object({
  name: z.string(),
  cron: z.array(z.string()),
  paused: z.boolean(),
  note: z.string().optional(),
  nextRuns: z.array(z.string()),
  rollout: z.unknown(),
});
type ScheduleOut = z.infer<typeof ScheduleOut>;

const notFound = (name: string) => (err: unknown) => {
  if (err instanceof ScheduleNotFoundError) throw new StoreError('NotFound', `schedule "${name}" not found`);
  throw err;
};

/** Scheduled patch runs: Temporal Schedules whose action starts a fleet rollout. */
export function scheduleRoutes(deps: {
  temporal: Client;
  taskQueue: string;
  auth: TokenAuthority;
}): FastifyPluginAsyncZod {
  const { temporal, taskQueue, auth } = deps;
  const security = [{ bearer: [] }];
  const tags = ['schedules'];
  const Params = z.strictObject({ name: ResourceName });

  async function describe(name: string): Promise<ScheduleOut> {
    const d = await temporal.schedule.getHandle(name).describe().catch(notFound(name));
    // Every schedule made here starts a workflow; args is only optional in the SDK's type.
    const args = d.action.args ?? [];
    return {
      name: d.scheduleId,
      // Schedules created here use cron strings only; the server reports them as calendars.
      cron: (d.memo?.cron as string[] | undefined) ?? [],
      paused: d.state.paused,
      ...(d.state.note !== undefined && d.state.note !== '' && { note: d.state.note }),
      nextRuns: d.info.nextActionTimes.map((t) => t.toISOString()),
      rollout: (args[0] as { request?: unknown } | undefined)?.request,
    };
  }

  return async (app) => {
    app.post(
      '/v1/schedules',
      {
        preHandler: auth.require('operate'),
        schema: {
          tags,
          security,
          summary: 'Create a scheduled rollout',
          body: ScheduleRequest,
          response: { 201: ScheduleOut, 409: Failure },
        },
      },
      async (request, reply) => {
        const { name, cron, rollout, paused, note } = request.body;
        await temporal.schedule
          .create({
            scheduleId: name,
            spec: { cronExpressions: cron },
            action: {
              type: 'startWorkflow',
              workflowType: workflowTypes.rollout,
              taskQueue,
              workflowId: `rollout/schedule-${name}`,
              // The rollout id is the schedule's; each run's workflow id gets the schedule's timestamp suffix.
              args: [{ rolloutId: `schedule-${name}`, request: RolloutRequest.parse(rollout) }],
              typedSearchAttributes: [{ key: operationAttribute, value: 'rollout' }],
            },
            memo: { cron },
            state: { paused, ...(note !== undefined && { note }) },
          })
          .catch((err: unknown) => {
            if (err instanceof Error && err.name === 'ScheduleAlreadyRunning') {
              throw new StoreError('AlreadyExists', `schedule "${name}" already exists`, 'name');
            }
            throw err;
          });
        return reply.code(201).send(await describe(name));
      },
    );

    app.get(
      '/v1/schedules',
      {
        preHandler: auth.require('read'),
        schema: {
          tags,
          security,
          summary: 'List scheduled rollouts',
          response: {
            200: z.object({ items: z.array(z.object({ name: z.string(), paused: z.boolean().optional() })) }),
          },
        },
      },
      async () => {
        const items: { name: string; paused?: boolean }[] = [];
        for await (const s of temporal.schedule.list()) items.push({ name: s.scheduleId, paused: s.state.paused });
        return { items };
      },
    );

    app.get(
      '/v1/schedules/:name',
      {
        preHandler: auth.require('read'),
        schema: {
          tags,
          security,
          summary: 'Read a scheduled rollout',
          params: Params,
          response: { 200: ScheduleOut, 404: Failure },
        },
      },
      async (request) => describe(request.params.name),
    );

    for (const action of ['pause', 'unpause'] as const) {
      app.post(
        `/v1/schedules/:name/${action}`,
        {
          preHandler: auth.require('operate'),
          schema: {
            tags,
            security,
            summary: `${action} a scheduled rollout`,
            params: Params,
            body: z.strictObject({ note: z.string().max(1024).optional() }).optional(),
            response: { 200: ScheduleOut, 404: Failure },
          },
        },
        async (request) => {
          const handle = temporal.schedule.getHandle(request.params.name);
          await handle[action](request.body?.note).catch(notFound(request.params.name));
          return describe(request.params.name);
        },
      );
    }

    app.delete(
      '/v1/schedules/:name',
      {
        preHandler: auth.require('operate'),
        schema: {
          tags,
          security,
          summary: 'Delete a scheduled rollout',
          params: Params,
          response: { 204: z.null(), 404: Failure },
        },
      },
      async (request, reply) => {
        await temporal.schedule.getHandle(request.params.name).delete().catch(notFound(request.params.name));
        return reply.code(204).send(null);
      },
    );
  };
}
