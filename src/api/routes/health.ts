import type { Client } from '@temporalio/client';
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { Store } from '../../store/index.ts';

const Health = z.object({ status: z.enum(['ok', 'degraded']), temporal: z.enum(['ok', 'unreachable']) });
const Live = z.object({ status: z.literal('ok') });
const Readiness = z.object({
  status: z.enum(['ready', 'not-ready']),
  temporal: z.enum(['ok', 'unreachable']),
  database: z.enum(['ok', 'unreachable']),
});

export interface HealthDeps {
  temporal: Client;
  store: Pick<Store, 'sql'>;
  /** How long a readiness check waits for each dependency: probes have their own timeout, this stays under it. */
  deadlineMs?: number;
}

/** Whether `check` succeeds within `ms`; a check that hangs counts as failed and is left to finish on its own. */
async function within(ms: number, check: () => Promise<unknown>): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<false>((resolve) => {
    timer = setTimeout(() => {
      resolve(false);
    }, ms);
  });
  try {
    return await Promise.race([
      check().then(
        () => true,
        () => false,
      ),
      late,
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Unauthenticated, so that load balancers, Kubernetes probes and `npm start` can reach them. /livez: the process
 * answers (no dependency: a Temporal or database outage must not get every replica restarted). /readyz: it can serve,
 * Temporal and the database each answering within the deadline; 503 otherwise, so that a Service sends requests to
 * the replicas that can. /healthz: Temporal reachability, as earlier releases answered it.
 */
export function healthRoutes(deps: HealthDeps): FastifyPluginAsyncZod {
  const deadlineMs = deps.deadlineMs ?? 2000;
  const temporalReachable = () =>
    within(deadlineMs, () =>
      deps.temporal.withDeadline(Date.now() + deadlineMs, () => deps.temporal.workflowService.getSystemInfo({})),
    );
  return async (app) => {
    app.get(
      '/livez',
      { schema: { tags: ['health'], summary: 'Liveness: the process answers', response: { 200: Live } } },
      async () => ({ status: 'ok' }) as const,
    );
    app.get(
      '/readyz',
      {
        schema: {
          tags: ['health'],
          summary: 'Readiness: Temporal and the database answer within the deadline (503 otherwise)',
          response: { 200: Readiness, 503: Readiness },
        },
      },
      async (_request, reply) => {
        const [temporal, database] = await Promise.all([
          temporalReachable(),
          within(deadlineMs, () => deps.store.sql.query('SELECT 1')),
        ]);
        const body = {
          status: temporal && database ? 'ready' : 'not-ready',
          temporal: temporal ? 'ok' : 'unreachable',
          database: database ? 'ok' : 'unreachable',
        } as const;
        return reply.code(temporal && database ? 200 : 503).send(body);
      },
    );
    app.get(
      '/healthz',
      { schema: { tags: ['health'], summary: 'Liveness and Temporal reachability', response: { 200: Health } } },
      async () => {
        const reachable = await temporalReachable();
        return { status: reachable ? 'ok' : 'degraded', temporal: reachable ? 'ok' : 'unreachable' } as const;
      },
    );
  };
}
