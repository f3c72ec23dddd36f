import { type Client, ScheduleNotFoundError, ScheduleOverlapPolicy } from '@temporalio/client';
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ResourceName } from '../../domain/names.ts';
import { type FleetRolloutInput, RolloutRequest, ScheduleRequest, workflowTypes } from '../../domain/operations.ts';
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
  /** The rollouts it started lately, newest last: each is readable at /v1/rollouts/{rolloutId}. */
  recentRuns: z.array(z.object({ rolloutId: z.string(), scheduledAt: z.string(), takenAt: z.string() })),
  rollout: z.unknown(),
});
type ScheduleOut = z.infer<typeof ScheduleOut>;

/** A scheduled run's rollout id: its workflow id (the schedule's id and timestamp) without the prefix. */
const recentRuns = (actions: { scheduledAt: Date; takenAt: Date; action: { workflow: { workflowId: string } } }[]) =>
  actions.map((a) => ({
    rolloutId: a.action.workflow.workflowId.replace(/^rollout\//, ''),
    scheduledAt: a.scheduledAt.toISOString(),
    takenAt: a.takenAt.toISOString(),
  }));

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
      recentRuns: recentRuns(d.info.recentActions),
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
        // The rollout id is the schedule's; each run's workflow id gets the schedule's timestamp suffix, and the
        // rollout takes its id from there.
        const input: FleetRolloutInput = { rolloutId: `schedule-${name}`, request: RolloutRequest.parse(rollout) };
        await temporal.schedule
          .create({
            scheduleId: name,
            spec: { cronExpressions: cron },
            action: {
              type: 'startWorkflow',
              workflowType: workflowTypes.rollout,
              taskQueue,
              workflowId: `rollout/schedule-${name}`,
              args: [input],
              typedSearchAttributes: [{ key: operationAttribute, value: 'rollout' }],
            },
            // A run still going when the next is due is not doubled: the next is skipped.
            policies: { overlap: ScheduleOverlapPolicy.SKIP },
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

    const ScheduleItem = z.object({
      name: z.string(),
      paused: z.boolean(),
      nextRun: z.string().optional(),
      lastRun: z.object({ rolloutId: z.string(), takenAt: z.string() }).optional(),
    });
    app.get(
      '/v1/schedules',
      {
        preHandler: auth.require('read'),
        schema: {
          tags,
          security,
          summary: 'List scheduled rollouts with their next and last runs',
          response: { 200: z.object({ items: z.array(ScheduleItem) }) },
        },
      },
      async () => {
        const items: z.infer<typeof ScheduleItem>[] = [];
        for await (const s of temporal.schedule.list()) {
          const next = s.info.nextActionTimes[0];
          const last = recentRuns(s.info.recentActions).at(-1);
          items.push({
            name: s.scheduleId,
            paused: s.state.paused,
            ...(next && !s.state.paused && { nextRun: next.toISOString() }),
            ...(last && { lastRun: { rolloutId: last.rolloutId, takenAt: last.takenAt } }),
          });
        }
        items.sort((a, b) => a.name.localeCompare(b.name));
        return { items };
      },
    );

    app.post(
      '/v1/schedules/:name/trigger',
      {
        preHandler: auth.require('operate'),
        schema: {
          tags,
          security,
          summary: "Start a scheduled rollout now (skipped while the schedule's previous run still runs)",
          params: Params,
          response: { 202: z.object({ name: z.string() }), 404: Failure },
        },
      },
      async (request, reply) => {
        const { name } = request.params;
        await temporal.schedule.getHandle(name).trigger(ScheduleOverlapPolicy.SKIP).catch(notFound(name));
        return reply.code(202).send({ name });
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
