import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { TokenAuthority } from '../../api/auth.ts';
import { ClusterSpec, ClusterStatus, ClusterUpgrade } from '../../domain/bpa.ts';
import { ResourceName } from '../../domain/names.ts';
import { type ClusterRecord, kubeconfigPath } from '../cluster.ts';
import type { BpaEngine } from '../engine.ts';
import { Failure, security } from './common.ts';

/**
 * kubeadm clusters: brought up or reconciled to a spec's hosts, upgraded, reset; each change is a job (202 with the
 * cluster's status naming it), a request already satisfied or already under way answers 200, and a change while
 * another job runs on the cluster 409. Also the cluster's status and its admin kubeconfig.
 */
export function clusterRoutes(deps: {
  engine: BpaEngine;
  dataDir: string;
  auth: TokenAuthority;
}): FastifyPluginAsyncZod {
  const { engine, dataDir, auth } = deps;
  // Synchronous, so that the status answered for a job just started is read before the job can have moved on.
  const statusOf = (record: ClusterRecord): ClusterStatus => {
    const job = engine.get(record.jobId);
    // Jobs are never dropped from the journal: a record pointing at none means that the journal lost files.
    const error = job ? job.error : `job ${record.jobId} is not in the journal`;
    return {
      name: record.name,
      jobId: record.jobId,
      operation: record.operation,
      state: job?.state ?? 'failed',
      steps: engine.steps(record.jobId) ?? [],
      kubeconfigReady: existsSync(kubeconfigPath(dataDir, record.name)),
      kubernetesVersion: record.kubernetesVersion,
      hosts: record.members.map((h) => ({ name: h.name, role: h.role })),
      ...(error !== undefined && { error }),
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
          summary:
            'Bring a cluster up with kubeadm, or reconcile its hosts to the spec (hosts added join, hosts removed are reset)',
          description:
            'A new name is brought up as job cluster-<name>. For an existing cluster only the hosts may differ (the version changes by an upgrade): hosts added get the packages and join, hosts removed are reset with `kubeadm reset -f` and forgotten, the others are left alone. 202 when a job starts; 200 with the status as it stands when the cluster has these hosts already or this very spec is being worked on; 409 while another job runs on the cluster.',
          body: ClusterSpec,
          response: { 200: ClusterStatus, 202: ClusterStatus, 400: Failure, 409: Failure },
        },
      },
      async (request, reply) => {
        const { cluster, created } = engine.startCluster(request.body);
        return reply.code(created ? 202 : 200).send(statusOf(cluster));
      },
    );

    app.post(
      '/v1/clusters/:name/upgrade',
      {
        preHandler: auth.require('operate'),
        schema: {
          tags,
          security,
          summary:
            'Upgrade the cluster: the packages on every host, `kubeadm upgrade apply` on the first control plane, `kubeadm upgrade node` on the others then the workers',
          description:
            "202 when the upgrade starts; 200 when the cluster runs that version already or is being upgraded to it; 409 while another job runs on the cluster, or for a downgrade. The cluster's kubernetesVersion changes once every host is upgraded.",
          params: Params,
          body: ClusterUpgrade,
          response: { 200: ClusterStatus, 202: ClusterStatus, 400: Failure, 404: Failure, 409: Failure },
        },
      },
      async (request, reply) => {
        const { cluster, created } = engine.upgradeCluster(request.params.name, request.body);
        return reply.code(created ? 202 : 200).send(statusOf(cluster));
      },
    );

    app.delete(
      '/v1/clusters/:name',
      {
        preHandler: auth.require('operate'),
        schema: {
          tags,
          security,
          summary: '`kubeadm reset -f` on every host of the cluster (workers first), then forget it and its kubeconfig',
          description:
            'The reset is a job: 202 when it starts, 200 when it is under way already, 404 once the cluster is gone (a reset done), 409 while another job runs on the cluster. GET /v1/clusters/:name answers 404 once the reset is done; a failed reset leaves the cluster with state failed.',
          params: Params,
          response: { 200: ClusterStatus, 202: ClusterStatus, 404: Failure, 409: Failure },
        },
      },
      async (request, reply) => {
        const { cluster, created } = engine.resetCluster(request.params.name);
        return reply.code(created ? 202 : 200).send(statusOf(cluster));
      },
    );

    app.get(
      '/v1/clusters/:name',
      {
        preHandler: auth.require('read'),
        schema: {
          tags,
          security,
          summary: "The cluster's hosts, version, and its latest job's state",
          params: Params,
          response: { 200: ClusterStatus, 404: Failure },
        },
      },
      async (request, reply) => {
        const record = engine.cluster(request.params.name);
        return record ? statusOf(record) : reply.code(404).send(notFound(request.params.name));
      },
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
