import type { Readable } from 'node:stream';
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { ArtifactMetadataQuery, ArtifactSpec, ArtifactType } from '../../domain/artifact.ts';
import { Sha256 } from '../../domain/meta.ts';
import { ResourceName } from '../../domain/names.ts';
import type { Store } from '../../store/index.ts';
import type { TokenAuthority } from '../auth.ts';
import { Failure } from '../errors.ts';

const ArtifactOut = ArtifactSpec.extend({ createdAt: z.string() });

const UploadQuery = z.strictObject({
  type: ArtifactType,
  name: ResourceName,
  version: ArtifactSpec.shape.version,
  sha256: Sha256,
  size: z.coerce.number().int().nonnegative(),
  metadata: ArtifactMetadataQuery.optional(),
});

/** `bytes=a-b`, `bytes=a-` or `bytes=-n` against a file of `size` bytes; undefined when unsatisfiable. */
export function parseRange(header: string, size: number): { start: number; end: number } | undefined {
  const m = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!m || (m[1] === '' && m[2] === '')) return undefined;
  const [start, end] =
    m[1] === ''
      ? [Math.max(size - Number(m[2]), 0), size - 1]
      : [Number(m[1]), m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1)];
  return start <= end && start < size ? { start, end } : undefined;
}

/** Artifacts: uploaded as a raw stream, checked against the declared sha256 and size before they become visible. */
export function artifactRoutes(deps: { store: Store; auth: TokenAuthority }): FastifyPluginAsyncZod {
  const { store, auth } = deps;
  return async (app) => {
    // Only raw content, handed over unread: the store streams it to disk while hashing. Any other body type (JSON,
    // text) would be buffered and reshaped by its parser, so it is refused with 415 here.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('application/octet-stream', (_request, payload, done) => {
      done(null, payload);
    });
    const tags = ['artifacts'];
    const security = [{ bearer: [] }];
    const Digest = z.strictObject({ sha256: Sha256 });

    app.post(
      '/v1/artifacts',
      {
        preHandler: auth.require('write'),
        schema: {
          tags,
          security,
          summary: 'Upload an artifact (body: the raw content, Content-Type application/octet-stream)',
          querystring: UploadQuery,
          response: { 200: ArtifactOut, 201: ArtifactOut, 400: Failure, 409: Failure, 413: Failure },
        },
      },
      async (request, reply) => {
        const { metadata, ...spec } = request.query;
        const declared = Number(request.headers['content-length'] ?? spec.size);
        if (declared !== spec.size) {
          (request.body as Readable).resume();
          return reply.code(400).send({
            error: 'Invalid',
            message: `Content-Length ${declared} differs from size ${spec.size}`,
            field: 'size',
          });
        }
        const { artifact, created } = await store.artifacts.upload(
          { ...spec, metadata: metadata ?? {} },
          request.body as Readable,
        );
        return reply.code(created ? 201 : 200).send(artifact);
      },
    );

    app.get(
      '/v1/artifacts',
      {
        preHandler: auth.require('read'),
        schema: {
          tags,
          security,
          summary: 'List artifacts',
          querystring: z.strictObject({ type: ArtifactType.optional(), name: ResourceName.optional() }),
          response: { 200: z.object({ items: z.array(ArtifactOut) }) },
        },
      },
      async (request) => ({
        items: await store.artifacts.list({
          ...(request.query.type && { type: request.query.type }),
          ...(request.query.name && { name: request.query.name }),
        }),
      }),
    );

    app.get(
      '/v1/artifacts/:sha256',
      {
        preHandler: auth.require('read'),
        schema: {
          tags,
          security,
          summary: "Read an artifact's metadata",
          params: Digest,
          response: { 200: ArtifactOut, 404: Failure },
        },
      },
      async (request) => store.artifacts.get(request.params.sha256),
    );

    app.get(
      '/v1/artifacts/:sha256/content',
      {
        preHandler: auth.require('read'),
        schema: { tags, security, summary: "Download an artifact's content (Range supported)", params: Digest },
      },
      async (request, reply) => {
        const artifact = await store.artifacts.get(request.params.sha256);
        const headers = {
          'content-type': 'application/octet-stream',
          'accept-ranges': 'bytes',
          etag: `"${artifact.sha256}"`,
          'x-checksum-sha256': artifact.sha256,
        };
        const rangeHeader = request.headers.range;
        if (rangeHeader === undefined) {
          return reply
            .headers({ ...headers, 'content-length': artifact.size })
            .send(store.artifacts.files.open(artifact.sha256));
        }
        const range = parseRange(rangeHeader, artifact.size);
        if (!range) {
          return reply
            .code(416)
            .headers({ 'content-range': `bytes */${artifact.size}` })
            .send({ error: 'RangeNotSatisfiable', message: `no bytes of ${rangeHeader} in ${artifact.size}` });
        }
        return reply
          .code(206)
          .headers({
            ...headers,
            'content-length': range.end - range.start + 1,
            'content-range': `bytes ${range.start}-${range.end}/${artifact.size}`,
          })
          .send(store.artifacts.files.open(artifact.sha256, range));
      },
    );

    app.delete(
      '/v1/artifacts/:sha256',
      {
        preHandler: auth.require('write'),
        schema: {
          tags,
          security,
          summary: 'Delete an artifact no profile references',
          params: Digest,
          response: { 204: z.null(), 404: Failure, 409: Failure },
        },
      },
      async (request, reply) => {
        await store.artifacts.delete(request.params.sha256);
        return reply.code(204).send(null);
      },
    );
  };
}
