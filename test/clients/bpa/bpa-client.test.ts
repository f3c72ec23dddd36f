// Needs: the BPA itself (in this process, its API on a free port); no SSH host is touched.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../../deploy/dev/lab/processes.ts';
import { buildBpaApi, openBpa, parseBpaConfig, type Bpa } from '../../../src/bpa/index.ts';
import { BpaClient } from '../../../src/clients/bpa/index.ts';
import { PeerError } from '../../../src/clients/errors.ts';
import { createLogger } from '../../../src/observability/logger.ts';

let dir: string;
let bpa: Bpa;
let close: () => Promise<void>;
let url: string;
const token = 'client-test-token-0123456789';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'icn-bpa-client-'));
  const port = await freePort();
  const config = parseBpaConfig({
    ICN_BPA_PORT: String(port),
    ICN_BPA_DATA_DIR: join(dir, 'bpa'),
    ICN_BPA_TOKENS: `${token}=admin`,
  });
  const logger = createLogger({ level: 'silent', name: 'bpa-test' });
  bpa = await openBpa(config, logger);
  const app = await buildBpaApi(bpa, logger);
  url = await app.listen({ host: '127.0.0.1', port });
  close = async () => {
    await app.close();
    await bpa.close();
  };
});

afterAll(async () => {
  await close();
  rmSync(dir, { recursive: true, force: true });
});

/** A package of `size` random bytes named `name`, written to a file of its own: its bytes, file and spec. */
function randomPackage(name: string, size: number) {
  const content = randomBytes(size);
  const file = join(dir, `${name}.bin`);
  writeFileSync(file, content);
  const sha256 = createHash('sha256').update(content).digest('hex');
  const spec = { type: 'binary-package' as const, name, version: '1.0.0', sha256, size, metadata: {} };
  return { content, file, sha256, spec };
}

describe('BpaClient', () => {
  it('resumes an upload broken mid-way from where the BPA stands, sending nothing twice', async () => {
    const { file, sha256, spec } = randomPackage('drv', 500_000);
    const ranges: string[] = [];
    let puts = 0;
    // The third chunk never arrives: the connection "breaks" before it is sent.
    const flaky: typeof fetch = async (input, init) => {
      if (init?.method === 'PUT') {
        ranges.push(new Headers(init.headers).get('content-range') ?? '');
        if (++puts === 3) throw new TypeError('fetch failed', { cause: new Error('socket hang up') });
      }
      return fetch(input, init);
    };
    const client = new BpaClient({ url, token, chunkBytes: 100_000, fetch: flaky });
    const err = await client.uploadArtifact(spec, file).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PeerError);
    expect(err).toMatchObject({ peer: 'bpa', reason: 'Unreachable', retryable: true });
    expect(await client.uploadStatus(sha256)).toEqual({ sha256, size: 500_000, offset: 200_000, complete: false });

    const done = await client.uploadArtifact(spec, file);
    expect(done.complete).toBe(true);
    expect(ranges).toEqual([
      'bytes 0-99999/500000',
      'bytes 100000-199999/500000',
      'bytes 200000-299999/500000',
      'bytes 200000-299999/500000',
      'bytes 300000-399999/500000',
      'bytes 400000-499999/500000',
    ]);
    // Asked again, it sends nothing.
    await client.uploadArtifact(spec, file);
    expect(ranges).toHaveLength(6);
  });

  it('sends a small artifact whole without asking first; one an earlier attempt left half-way goes on from there', async () => {
    const { file, sha256, spec } = randomPackage('agent', 50_000);
    const seen: string[] = [];
    const recording =
      (breakAt?: number): typeof fetch =>
      async (input, init) => {
        const method = init?.method ?? 'GET';
        const path = new URL(input instanceof Request ? input.url : String(input)).pathname;
        seen.push(
          `${method} ${path.split('/').slice(0, 3).join('/')} ${new Headers(init?.headers).get('content-range') ?? ''}`.trim(),
        );
        if (method === 'PUT' && seen.filter((s) => s.startsWith('PUT')).length === breakAt) {
          throw new TypeError('fetch failed', { cause: new Error('socket hang up') });
        }
        return fetch(input, init);
      };
    // An attempt in 20,000-byte chunks breaks before its second chunk: 20,000 bytes stand at the BPA.
    const broken = new BpaClient({ url, token, chunkBytes: 20_000, fetch: recording(2) });
    await expect(broken.uploadArtifact(spec, file)).rejects.toMatchObject({ reason: 'Unreachable' });
    seen.length = 0;

    const client = new BpaClient({ url, token, fetch: recording() });
    expect(await client.uploadArtifact(spec, file)).toEqual({ sha256, size: 50_000, offset: 50_000, complete: true });
    // No status asked: the whole file offered, refused at 20,000 (409), then the rest.
    expect(seen).toEqual(['PUT /v1/uploads bytes 0-49999/50000', 'PUT /v1/uploads bytes 20000-49999/50000']);
    expect(await client.getArtifact(sha256)).toMatchObject({ sha256, size: 50_000 });
  });

  it('uploads from bytes held in memory, chunk by chunk; bytes unlike the spec are refused before anything is sent', async () => {
    const { content, sha256, spec } = randomPackage('held', 30_000);
    const puts: string[] = [];
    const counting: typeof fetch = async (input, init) => {
      if (init?.method === 'PUT') puts.push(new Headers(init.headers).get('content-range') ?? '');
      return fetch(input, init);
    };
    const client = new BpaClient({ url, token, chunkBytes: 12_000, fetch: counting });
    await expect(client.uploadArtifact(spec, content.subarray(1))).rejects.toMatchObject({
      reason: 'LocalFileError',
      retryable: false,
    });
    expect(puts).toEqual([]);
    expect(await client.uploadArtifact(spec, content)).toMatchObject({ offset: 30_000, complete: true });
    expect(puts).toEqual(['bytes 0-11999/30000', 'bytes 12000-23999/30000', 'bytes 24000-29999/30000']);
    expect(await client.getArtifact(sha256)).toMatchObject({ sha256, size: 30_000 });
  });

  it('classifies failures: unreachable is retryable, refusals are not, and errors carry no token', async () => {
    const down = new BpaClient({ url: `http://127.0.0.1:${await freePort()}`, token });
    const unreachable = await down.listArtifacts().catch((e: unknown) => e);
    expect(unreachable).toMatchObject({ peer: 'bpa', reason: 'Unreachable', retryable: true });

    const stranger = new BpaClient({ url, token: 'not-a-known-token-0123456789' });
    const refused = (await stranger.listJobs().catch((e: unknown) => e)) as PeerError;
    expect(refused).toMatchObject({ reason: 'Unauthorized', retryable: false });
    expect(refused.message).not.toContain('not-a-known-token');

    const client = new BpaClient({ url, token });
    const invalid = (await client.startJob({ hosts: [], packages: [] }).catch((e: unknown) => e)) as PeerError;
    expect(invalid).toMatchObject({ reason: 'ValidationError', retryable: false });
    expect(invalid.message).toContain('body.hosts');
    expect(await client.getJob('no-such-job')).toBeUndefined();
  });

  it('times out a BPA that does not answer, or stops within its answer, as retryable; an upload is not timed', async () => {
    // A loopback server, not the BPA: the BPA never hangs on purpose.
    const held: ServerResponse[] = [];
    const stalled = createServer((req, res) => {
      if (req.url === '/v1/artifacts') {
        held.push(res); // no answer at all
      } else if (req.url === '/v1/jobs') {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.write('{"items": ['); // an answer that stops half-way
        held.push(res);
      } else {
        // An upload's chunk answered after twice the timeout.
        req.resume();
        req.on('end', () => {
          setTimeout(() => {
            res.writeHead(200, { 'content-type': 'application/json' });
            res.end(JSON.stringify({ sha256: 'a'.repeat(64), size: 3, offset: 3, complete: true }));
          }, 600);
        });
      }
    });
    const port = await freePort();
    await new Promise<void>((resolve) => stalled.listen(port, '127.0.0.1', resolve));
    try {
      const client = new BpaClient({ url: `http://127.0.0.1:${port}`, token, timeoutMs: 300 });
      const silent = (await client.listArtifacts().catch((e: unknown) => e)) as PeerError;
      expect(silent).toMatchObject({ peer: 'bpa', reason: 'Timeout', retryable: true });
      expect(silent.message).toContain('GET');
      expect(silent.message).toContain('no answer within 300 ms');
      const halfway = (await client.listJobs().catch((e: unknown) => e)) as PeerError;
      expect(halfway).toMatchObject({ peer: 'bpa', reason: 'Timeout', retryable: true });
      const spec = { type: 'binary-package' as const, name: 'slow', version: '1', sha256: 'a'.repeat(64), size: 3 };
      await expect(client.uploadArtifact({ ...spec, metadata: {} }, Buffer.from('abc'))).resolves.toMatchObject({
        complete: true,
      });
      // A request answered in time leaves no timer behind.
      const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
      const before = timers();
      await new BpaClient({ url, token, timeoutMs: 60_000 }).listArtifacts();
      expect(timers()).toBe(before);
    } finally {
      for (const res of held) res.destroy();
      await new Promise((resolve) => stalled.close(resolve));
    }
  });
});
