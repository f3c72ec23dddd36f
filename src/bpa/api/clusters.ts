import { readFile } from 'node:fs/promises';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { TokenAuthority } from '../../api/auth.ts';
import { ClusterSpec, ClusterStatus } from '../../domain/bpa.ts';
import { ResourceName } from '../../domain/names.ts';
import { kubeconfigPath } from '../cluster.ts';
import type { BpaEngine } from '../engine.ts';
import { Failure, security } from './common.ts';

/** kubeadm bring-up: started once per cluster name (a repeat returns the same bring-up), polled, kubeconfig read. */
export function clusterRoutes(deps: {
  engine: BpaEngine;
  dataDir: string;
  auth: TokenAuthority;
}): FastifyPluginAsyncZod {
  const { engine, dataDir, auth } = deps;
  const statusOf = async (name: string): Promise<ClusterStatus | undefined> => {
    const jobId = `cluster-${name}`;
    const job = engine.get(jobId);
    if (!job) return undefined;
    const kubeconfigReady = await readFile(kubeconfigPath(dataDir, name)).then(
      () => true,
      () => false,
    );
    return {
      name,
      jobId,
      state: job.state,
      steps: engine.steps(jobId) ?? [],
      kubeconfigReady,
      ...(job.error !== undefined && { error: job.error }),
    };
  };
  return async (app) => {
    const tags = ['clusters'];
    const Params = z.strictObject({ name: ResourceName });
    const notFound = (name: string) => ({ error: 'NotFound', message: `cluster ${name} not found` });

    app.post(
      '/v1/clusters',
      {
        preHandler: auth.require('operate'),
        schema: {
          tags,
          security,
          summary: 'Bring a cluster up with kubeadm (packages, init, joins); progress as job cluster-<name>',
          body: ClusterSpec,
          response: { 200: ClusterStatus, 202: ClusterStatus, 400: Failure, 409: Failure },
        },
      },
      async (request, reply) => {
        const { created } = engine.startCluster(request.body);
        const status = await statusOf(request.body.name);
        if (!status) throw new Error(`cluster ${request.body.name} vanished right after it started`);
        return reply.code(created ? 202 : 200).send(status);
      },
    );

    app.get(
      '/v1/clusters/:name',
      {
        preHandler: auth.require('read'),
        schema: {
          tags,
          security,
          summary: "A bring-up's state",
          params: Params,
          response: { 200: ClusterStatus, 404: Failure },
        },
      },
      async (request, reply) =>
        (await statusOf(request.params.name)) ?? reply.code(404).send(notFound(request.params.name)),
    );

    app.get(
      '/v1/clusters/:name/kubeconfig',
      {
        preHandler: auth.require('operate'),
        schema: { tags, security, summary: "The cluster's admin kubeconfig (YAML)", params: Params },
      },
      async (request, reply) => {
        const kubeconfig = await readFile(kubeconfigPath(dataDir, request.params.name), 'utf8').catch(() => undefined);
        if (kubeconfig === undefined) {
          return reply
            .code(404)
            .send({ error: 'NotFound', message: `no kubeconfig for cluster ${request.params.name} yet` });
        }
        return reply.header('content-type', 'application/yaml').header('cache-control', 'no-store').send(kubeconfig);
      },
    );
  };
}
