import type { Client } from '@temporalio/client';
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';

const Health = z.object({ status: z.enum(['ok', 'degraded']), temporal: z.enum(['ok', 'unreachable']) });

/** Unauthenticated, so that load balancers and `npm start` can probe it. */
export function healthRoutes(temporal: Client): FastifyPluginAsyncZod {
  return async (app) => {
    app.get(
      '/healthz',
      { schema: { tags: ['health'], summary: 'Liveness and Temporal reachability', response: { 200: Health } } },
      async () => {
        const reachable = await temporal.workflowService
          .getSystemInfo({})
          .then(() => true)
          .catch(() => false);
        return { status: reachable ? 'ok' : 'degraded', temporal: reachable ? 'ok' : 'unreachable' } as const;
      },
    );
  };
}
