import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { TokenAuthority } from '../../api/auth.ts';
import { InstalledPackage, InstallJob, InstallJobSpec, type JobEvent } from '../../domain/bpa.ts';
import type { BpaEngine } from '../engine.ts';
import { Failure, security } from './common.ts';

/** Install and rollback jobs: started idempotently by id, polled, or followed as an NDJSON stream. */
export function jobRoutes(deps: { engine: BpaEngine; auth: TokenAuthority }): FastifyPluginAsyncZod {
  const { engine, auth } = deps;
  return async (app) => {
    const tags = ['jobs'];
    const JobParams = z.strictObject({ id: z.string().min(1).max(128) });
    const notFound = (id: string) => ({ error: 'NotFound', message: `job ${id} not found` });

    app.post(
      '/v1/jobs',
      {
        preHandler: auth.require('operate'),
        schema: {
          tags,
          security,
          summary: 'Start an install (or rollback) job; with an id already used for the same spec, return that job',
          body: InstallJobSpec,
          response: { 200: InstallJob, 201: InstallJob, 400: Failure, 409: Failure },
        },
      },
      async (request, reply) => {
        const { job, created } = engine.startInstall(request.body);
        return reply.code(created ? 201 : 200).send(job);
      },
    );

    app.get(
      '/v1/jobs',
      {
        preHandler: auth.require('read'),
        schema: {
          tags,
          security,
          summary: 'List jobs (without their hosts)',
          response: { 200: z.object({ items: z.array(InstallJob) }) },
        },
      },
      async () => ({ items: engine.list() }),
    );

    app.get(
      '/v1/jobs/:id',
      {
        preHandler: auth.require('read'),
        schema: {
          tags,
          security,
          summary: 'A job with the progress of every host',
          params: JobParams,
          response: { 200: InstallJob, 404: Failure },
        },
      },
      async (request, reply) => {
        const job = engine.get(request.params.id);
        return job ?? reply.code(404).send(notFound(request.params.id));
      },
    );

    app.get(
      '/v1/jobs/:id/events',
      {
        preHandler: auth.require('read'),
        schema: {
          tags,
          security,
          summary:
            'The job as a stream of JSON lines (application/x-ndjson): every host as it stands, then each change, then "done" with the job as it ended',
          params: JobParams,
        },
      },
      async (request, reply) => {
        const id = request.params.id;
        const job = engine.get(id);
        if (!job) return reply.code(404).send(notFound(id));
        reply.raw.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
        const write = (event: JobEvent) => reply.raw.write(`${JSON.stringify(event)}\n`);
        const unsubscribe = engine.subscribe(id, (event) => {
          write(event);
          if (event.type === 'done') end();
        });
        function end() {
          unsubscribe?.();
          reply.raw.end();
        }
        request.raw.on('close', () => unsubscribe?.());
        for (const progress of job.hosts) write({ type: 'host', jobId: id, progress });
        if (job.state === 'succeeded' || job.state === 'failed') {
          write({ type: 'done', jobId: id, state: job.state, summary: job.summary, job });
          end();
        }
        return reply;
      },
    );

    app.get(
      '/v1/installed',
      {
        preHandler: auth.require('read'),
        schema: {
          tags,
          security,
          summary: 'What each host has installed, as the BPA recorded it',
          querystring: z.strictObject({ host: z.string().min(1).max(63).optional() }),
          response: { 200: z.object({ items: z.array(InstalledPackage) }) },
        },
      },
      async (request) => ({ items: engine.installed(request.query.host) }),
    );
  };
}
