// Needs: the real Temporal dev server (tools cache).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { defaultPayloadConverter } from '@temporalio/common';
import Fastify from 'fastify';
import { serializerCompiler, validatorCompiler, type ZodTypeProvider } from 'fastify-type-provider-zod';
import { healthRoutes } from '../../src/api/routes/health.ts';
import { postgres } from '../../src/store/sql.ts';
import { AesGcmPayloadCodec } from '../../src/temporal/codec.ts';
import { bearer, startApiStack, tokens } from '../support/api.ts';
import { startHttpPeer } from '../support/http-peer.ts';
import { testCodecKeys } from '../support/test-codec-keys.ts';

const { operator, reader } = tokens;
let stack: Awaited<ReturnType<typeof startApiStack>>;
let peer: Awaited<ReturnType<typeof startHttpPeer>>;

beforeAll(async () => {
  stack = await startApiStack();
  peer = await startHttpPeer({ '/v1': 200 });
});
afterAll(async () => {
  await peer.close();
  await stack.stop();
});

describe('trigger API', () => {
  it('answers health without a token', async () => {
    const res = await stack.api.inject({ method: 'GET', url: '/healthz' });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toEqual({ status: 'ok', temporal: 'ok' });
  });

  it('answers /livez and /readyz without a token; /readyz is 503 naming the dependency that does not answer', async () => {
    expect((await stack.api.inject({ method: 'GET', url: '/livez' })).json()).toEqual({ status: 'ok' });
    const ready = await stack.api.inject({ method: 'GET', url: '/readyz' });
    expect(ready.statusCode).toBe(200);
    expect(ready.json()).toEqual({ status: 'ready', temporal: 'ok', database: 'ok' });

    // A real PostgreSQL client pointed at a port nothing listens on: the database is down, Temporal is not.
    const down = postgres('postgres://icn:unused@127.0.0.1:1/icn');
    const app = Fastify().withTypeProvider<ZodTypeProvider>();
    app.setValidatorCompiler(validatorCompiler);
    app.setSerializerCompiler(serializerCompiler);
    await app.register(healthRoutes({ temporal: stack.env.client, store: { sql: down }, deadlineMs: 500 }));
    try {
      const started = Date.now();
      const notReady = await app.inject({ method: 'GET', url: '/readyz' });
      expect(notReady.statusCode).toBe(503);
      expect(notReady.json()).toEqual({ status: 'not-ready', temporal: 'ok', database: 'unreachable' });
      expect(Date.now() - started).toBeLessThan(5000);
      expect((await app.inject({ method: 'GET', url: '/livez' })).statusCode).toBe(200);
    } finally {
      await app.close();
      await down.close();
    }
  });

  it('runs a site health check through the worker and returns its report', async () => {
    const res = await stack.api.inject({
      method: 'POST',
      url: '/v1/sites/edge-07/health-check',
      headers: bearer(operator),
      payload: { endpoints: [{ name: 'ironic', url: `${peer.url}/v1` }] },
    });
    expect(res.statusCode).toBe(200);
    expect(res.json()).toMatchObject({ site: 'edge-07', healthy: true, probes: [{ name: 'ironic', httpStatus: 200 }] });
    const execution = await stack.env.client.workflow.getHandle('site/edge-07/health-check').describe();
    expect(execution.status.name).toBe('COMPLETED');
  });

  it('refuses a missing token (401) and a token without the scope (403)', async () => {
    const body = { endpoints: [{ name: 'ironic', url: `${peer.url}/v1` }] };
    const url = '/v1/sites/edge-08/health-check';
    expect((await stack.api.inject({ method: 'POST', url, payload: body })).statusCode).toBe(401);
    expect(
      (await stack.api.inject({ method: 'POST', url, payload: body, headers: bearer('wrong-token-0123456789') }))
        .statusCode,
    ).toBe(401);
    expect((await stack.api.inject({ method: 'POST', url, payload: body, headers: bearer(reader) })).statusCode).toBe(
      403,
    );
  });

  it.each([
    ['/v1/sites/Edge_08/health-check', { endpoints: [{ name: 'a', url: 'http://127.0.0.1:1/' }] }, 'params.site'],
    ['/v1/sites/edge-08/health-check', { endpoints: [{ name: 'a', url: 'ftp://x/' }] }, 'body.endpoints.0.url'],
    ['/v1/sites/edge-08/health-check', { endpoints: [] }, 'body.endpoints'],
    ['/v1/sites/edge-08/health-check', { endpoints: [{ name: 'a', url: 'http://x/' }], extra: 1 }, 'body'],
    ['/v1/sites/edge-08/health-check?wait=maybe', { endpoints: [{ name: 'a', url: 'http://x/' }] }, 'querystring.wait'],
  ])('answers 400 naming the field for %s %j', async (url, payload, field) => {
    const res = await stack.api.inject({ method: 'POST', url, payload, headers: bearer(operator) });
    expect(res.statusCode).toBe(400);
    const body = res.json<{ issues: { field: string }[] }>();
    expect(body.issues.map((i) => i.field)).toContain(field);
    // Nothing was started for the refused request.
    await expect(stack.env.client.workflow.getHandle('site/edge-08/health-check').describe()).rejects.toThrow(
      /not found/i,
    );
  });

  it('serves an OpenAPI document naming its routes', async () => {
    const res = await stack.api.inject({ method: 'GET', url: '/openapi.json' });
    expect(res.statusCode).toBe(200);
    expect(Object.keys(res.json<{ paths: object }>().paths)).toEqual(
      expect.arrayContaining(['/healthz', '/v1/sites/{site}/health-check', '/codec/decode']),
    );
  });
});

describe('codec endpoint for the Web UI', () => {
  const origin = 'http://localhost:8233';

  it('answers the preflight of the Web UI origin only', async () => {
    const ok = await stack.api.inject({
      method: 'OPTIONS',
      url: '/codec/decode',
      headers: {
        origin,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'authorization,x-namespace',
      },
    });
    expect(ok.statusCode).toBe(204);
    expect(ok.headers['access-control-allow-origin']).toBe(origin);
    const other = await stack.api.inject({
      method: 'OPTIONS',
      url: '/codec/decode',
      headers: { origin: 'http://evil.example', 'access-control-request-method': 'POST' },
    });
    expect(other.headers['access-control-allow-origin']).toBeUndefined();
  });

  it('decodes what the workers encrypted, for a reader, and refuses anonymous callers', async () => {
    const clear = defaultPayloadConverter.toPayload({ site: 'edge-07' });
    const [encrypted] = await new AesGcmPayloadCodec(testCodecKeys).encode([clear]);
    const json = {
      payloads: [
        {
          metadata: Object.fromEntries(
            Object.entries(encrypted!.metadata!).map(([k, v]) => [k, Buffer.from(v).toString('base64')]),
          ),
          data: Buffer.from(encrypted!.data!).toString('base64'),
        },
      ],
    };
    expect((await stack.api.inject({ method: 'POST', url: '/codec/decode', payload: json })).statusCode).toBe(401);
    const res = await stack.api.inject({
      method: 'POST',
      url: '/codec/decode',
      payload: json,
      headers: { ...bearer(reader), origin },
    });
    expect(res.statusCode).toBe(200);
    expect(res.headers['access-control-allow-origin']).toBe(origin);
    const decoded = res.json<{ payloads: { data: string }[] }>().payloads[0];
    expect(JSON.parse(Buffer.from(decoded!.data, 'base64').toString())).toEqual({ site: 'edge-07' });
  });
});
