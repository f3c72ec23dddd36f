import cors from '@fastify/cors';
import type { Payload, PayloadCodec } from '@temporalio/common';
import { z } from 'zod';
import type { FastifyPluginAsyncZod } from 'fastify-type-provider-zod';
import type { TokenAuthority } from '../auth.ts';

const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');
const JsonPayload = z.object({ metadata: z.record(z.string(), base64).optional(), data: base64.optional() });
const JsonPayloads = z.object({ payloads: z.array(JsonPayload).max(10_000) });
type JsonPayload = z.infer<typeof JsonPayload>;

function fromJson(p: JsonPayload): Payload {
  return {
    metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    data: Buffer.from(p.data ?? '', 'base64'),
  };
}

function toJson(p: Payload): JsonPayload {
  return {
    metadata: Object.fromEntries(
      Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
    ),
    data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
  };
}

export interface CodecRouteOptions {
  codec: PayloadCodec;
  auth: TokenAuthority;
  corsOrigins: string[];
  /** Only for a local dev stack whose Web UI has no login. */
  allowAnonymous: boolean;
}

/**
 * Temporal's remote codec protocol (POST {endpoint}/encode and /decode), so that the Web UI and the CLI can show
 * payloads in clear to callers holding a read token, while the server only ever stores ciphertext.
 */
export function codecRoutes(opts: CodecRouteOptions): FastifyPluginAsyncZod {
  return async (app) => {
    await app.register(cors, {
      origin: opts.corsOrigins,
      methods: ['POST', 'OPTIONS'],
      allowedHeaders: ['content-type', 'x-namespace', 'authorization'],
      credentials: true,
    });
    const guard = opts.allowAnonymous ? [] : [opts.auth.require('read')];
    for (const op of ['encode', 'decode'] as const) {
      app.post(
        `/${op}`,
        {
          preHandler: guard,
          schema: {
            tags: ['codec'],
            summary: `${op} Temporal payloads (remote codec for the Web UI)`,
            security: [{ bearer: [] }],
            body: JsonPayloads,
            response: { 200: JsonPayloads, 400: z.object({ error: z.string(), message: z.string() }) },
          },
        },
        async (request, reply) => {
          const payloads = request.body.payloads.map(fromJson);
          try {
            const out = op === 'encode' ? await opts.codec.encode(payloads) : await opts.codec.decode(payloads);
            return { payloads: out.map(toJson) };
          } catch (err) {
            const message = err instanceof Error ? err.message : String(err);
            return reply.code(400).send({ error: 'CodecError', message });
          }
        },
      );
    }
  };
}
