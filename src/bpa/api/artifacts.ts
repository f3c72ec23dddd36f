import type { Readable } from 'node:stream';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import { z } from 'zod';
import type { TokenAuthority } from '../../api/auth.ts';
import { ArtifactMetadataQuery, ArtifactSpec, ArtifactType } from '../../domain/artifact.ts';
import { BpaArtifact, UploadStatus } from '../../domain/bpa.ts';
import { Sha256 } from '../../domain/meta.ts';
import { ResourceName } from '../../domain/names.ts';
import { StoreError } from '../../store/errors.ts';
import { type ArtifactCache, OffsetMismatch } from '../artifacts.ts';
import { Failure, security } from './common.ts';

const UploadQuery = z.strictObject({
  type: ArtifactType,
  name: ResourceName,
  version: ArtifactSpec.shape.version,
  size: z.coerce.number().int().nonnegative(),
  metadata: ArtifactMetadataQuery.optional(),
});

/** `bytes start-end/total`; undefined when the header is malformed. */
export function parseContentRange(header: string): { start: number; end: number; total: number } | undefined {
  const m = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(header.trim());
  if (!m) return undefined;
  const [start, end, total] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return start <= end && end < total ? { start, end, total } : undefined;
}

/**
 * Artifacts the BPA holds. Uploads are resumable: PUT chunks with `Content-Range: bytes a-b/size` (or the whole body
 * without it); GET or HEAD /v1/uploads/{sha256} tells the offset (also as Upload-Offset) to resume from; a chunk
 * that does not start there is refused with 409 and the offset. The last chunk makes the BPA check the sha256.
 */
export function artifactRoutes(deps: { artifacts: ArtifactCache; auth: TokenAuthority }): FastifyPluginAsyncZod {
  const { artifacts, auth } = deps;
  return async (app) => {
    app.addContentTypeParser('application/octet-stream', (_request, payload, done) => {
      done(null, payload);
    });
    const tags = ['artifacts'];
    const Digest = z.strictObject({ sha256: Sha256 });

    app.get(
      '/v1/artifacts',
      {
        preHandler: auth.require('read'),
        schema: {
          tags,
          security,
          summary: 'List the artifacts this BPA holds',
          response: { 200: z.object({ items: z.array(BpaArtifact) }) },
        },
      },
      async () => ({ items: await artifacts.list() }),
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
          response: { 200: BpaArtifact, 404: Failure },
        },
      },
      async (request, reply) => {
        const artifact = await artifacts.get(request.params.sha256);
        if (!artifact) {
          return reply.code(404).send({ error: 'NotFound', message: `artifact ${request.params.sha256} not found` });
        }
        return artifact;
      },
    );

    app.delete(
      '/v1/artifacts/:sha256',
      {
        preHandler: auth.require('write'),
        schema: {
          tags,
          security,
          summary: 'Delete an artifact (or an unfinished upload of it)',
          params: Digest,
          response: { 204: z.null(), 404: Failure },
        },
      },
      async (request, reply) => {
        if (!(await artifacts.delete(request.params.sha256))) {
          return reply.code(404).send({ error: 'NotFound', message: `artifact ${request.params.sha256} not found` });
        }
        return reply.code(204).send(null);
      },
    );

    app.get(
      '/v1/uploads/:sha256',
      {
        preHandler: auth.require('read'),
        schema: {
          tags,
          security,
          summary: 'Where an upload stands (HEAD: the Upload-Offset and Upload-Length headers only)',
          params: Digest,
          response: { 200: UploadStatus, 404: Failure },
        },
      },
      async (request, reply) => {
        const status = await artifacts.status(request.params.sha256);
        if (!status) {
          return reply.code(404).send({ error: 'NotFound', message: `no upload of ${request.params.sha256}` });
        }
        return reply.headers({ 'upload-offset': status.offset, 'upload-length': status.size }).send(status);
      },
    );

    app.put(
      '/v1/uploads/:sha256',
      {
        preHandler: auth.require('write'),
        schema: {
          tags,
          security,
          summary:
            'Upload an artifact or a chunk of it (body: raw bytes, Content-Type application/octet-stream; Content-Range: bytes a-b/size)',
          params: Digest,
          querystring: UploadQuery,
          headers: z.object({ 'content-range': z.string().max(100).optional() }),
          response: { 200: UploadStatus, 400: Failure, 409: Failure, 413: Failure },
        },
      },
      async (request, reply) => {
        const body = request.body as Readable;
        const { metadata, ...rest } = request.query;
        const spec: ArtifactSpec = { ...rest, sha256: request.params.sha256, metadata: metadata ?? {} };
        const header = request.headers['content-range'];
        let start = 0;
        let length = spec.size;
        if (header !== undefined) {
          const range = parseContentRange(header);
          if (!range || range.total !== spec.size) {
            body.resume();
            return reply.code(400).send({
              error: 'Invalid',
              message: `Content-Range must be "bytes a-b/${spec.size}", not "${header}"`,
              field: 'content-range',
            });
          }
          start = range.start;
          length = range.end - range.start + 1;
        }
        const declared = request.headers['content-length'];
        if (declared !== undefined && Number(declared) !== length) {
          body.resume();
          return reply.code(400).send({
            error: 'Invalid',
            message: `Content-Length ${declared} differs from the ${length} bytes the range or size announce`,
            field: 'content-length',
          });
        }
        try {
          return await artifacts.append(spec, start, body);
        } catch (err) {
          if (err instanceof OffsetMismatch) {
            return reply.code(409).send({ error: 'OffsetMismatch', message: err.message, offset: err.offset });
          }
          if (err instanceof StoreError && err.field === 'sha256') {
            return reply.code(400).send({ error: 'ChecksumMismatch', message: err.message, field: 'sha256' });
          }
          throw err;
        }
      },
    );
  };
}
