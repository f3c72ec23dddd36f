import { type Client, WorkflowFailedError } from '@temporalio/client';
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { SiteHealthCheckRequest, SiteHealthReport } from '../../domain/health.ts';
import { ResourceName } from '../../domain/names.ts';
import { operationAttribute, siteAttribute } from '../../temporal/search-attributes.ts';
import type { siteHealthCheck } from '../../workflows/index.ts';
import type { TokenAuthority } from '../auth.ts';
import { Failure } from '../errors.ts';

const Started = z.object({ workflowId: z.string(), runId: z.string() });

export function siteHealthRoutes(deps: { temporal: Client; taskQueue: string; auth: TokenAuthority }) {
  const plugin: FastifyPluginAsyncZod = async (app) => {
    app.post(
      '/v1/sites/:site/health-check',
      {
        preHandler: deps.auth.require('operate'),
        schema: {
          tags: ['sites'],
          summary: "Probe a site's local-controller endpoints through a workflow",
          security: [{ bearer: [] }],
          params: z.strictObject({ site: ResourceName }),
          querystring: z.strictObject({ wait: z.enum(['true', 'false']).default('true') }),
          body: SiteHealthCheckRequest,
          response: { 200: SiteHealthReport, 202: Started, 502: Failure },
        },
      },
      async (request, reply) => {
        const { site } = request.params;
        // One health check per site at a time: a second request joins the running one.
        const handle = await deps.temporal.workflow.start<typeof siteHealthCheck>('siteHealthCheck', {
          taskQueue: deps.taskQueue,
          workflowId: `site/${site}/health-check`,
          workflowIdConflictPolicy: 'USE_EXISTING',
          args: [{ site, endpoints: request.body.endpoints }],
          typedSearchAttributes: [
            { key: siteAttribute, value: site },
            { key: operationAttribute, value: 'health-check' },
          ],
        });
        if (request.query.wait === 'false') {
          return reply.code(202).send({ workflowId: handle.workflowId, runId: handle.firstExecutionRunId });
        }
        try {
          return await handle.result();
        } catch (err) {
          if (err instanceof WorkflowFailedError) {
            return reply.code(502).send({ error: 'OperationFailed', message: err.cause?.message ?? err.message });
          }
          throw err;
        }
      },
    );
  };
  return plugin;
}
