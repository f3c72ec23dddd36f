// Needs: nothing but the BPA itself (in this process, its API on a free port); no SSH host is touched.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../deploy/dev/lab/processes.ts';
import { buildBpaApi, openBpa, parseBpaConfig, type Bpa } from '../../src/bpa/index.ts';
import { BpaClient } from '../../src/clients/bpa/index.ts';
import { createLogger } from '../../src/observability/logger.ts';

let dir: string;
let bpa: Bpa;
let app: Awaited<ReturnType<typeof buildBpaApi>>;
let url: string;
let client: BpaClient;
const token = 'artifact-test-token-0123456789';
const readOnly = 'artifact-test-reader-0123456789';

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'icn-bpa-artifacts-'));
  const port = await freePort();
  const config = parseBpaConfig({
    ICN_BPA_PORT: String(port),
    ICN_BPA_DATA_DIR: join(dir, 'bpa'),
    ICN_BPA_TOKENS: `${token}=write|read,${readOnly}=read`,
  });
  const logger = createLogger({ level: 'silent', name: 'bpa-test' });
  bpa = await openBpa(config, logger);
  app = await buildBpaApi(bpa, logger);
  url = await app.listen({ host: '127.0.0.1', port });
  client = new BpaClient({ url, token, chunkBytes: 100_000 });
});

afterAll(async () => {
  await app.close();
  await bpa.close();
  rmSync(dir, { recursive: true, force: true });
});

function artifact(bytes: number) {
  const content = randomBytes(bytes);
  const file = join(dir, `a-${bytes}.bin`);
  writeFileSync(file, content);
  const sha256 = createHash('sha256').update(content).digest('hex');
  return {
    content,
    file,
    spec: { type: 'binary-package' as const, name: 'drv', version: '1.0.0', sha256, size: bytes, metadata: {} },
  };
}

const put = (sha: string, query: string, body: Buffer, headers: Record<string, string> = {}) =>
  fetch(`${url}/v1/uploads/${sha}?${query}`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream', ...headers },
    body,
  });

describe('BPA artifact API', () => {
  it('resumes an upload from the offset the BPA reports, and verifies the whole on the last chunk', async () => {
    const a = artifact(300_000);
    const query = `type=binary-package&name=drv&version=1.0.0&size=${a.spec.size}`;
    const first = await put(a.spec.sha256, query, a.content.subarray(0, 120_000), {
      'content-range': `bytes 0-119999/300000`,
    });
    expect(first.status).toBe(200);
    expect(await first.json()).toEqual({ sha256: a.spec.sha256, size: 300_000, offset: 120_000, complete: false });

    const head = await fetch(`${url}/v1/uploads/${a.spec.sha256}`, {
      method: 'HEAD',
      headers: { authorization: `Bearer ${token}` },
    });
    expect(head.headers.get('upload-offset')).toBe('120000');
    // A chunk that does not start at the offset is refused, with the offset to resume from.
    const wrong = await put(a.spec.sha256, query, a.content.subarray(200_000), {
      'content-range': 'bytes 200000-299999/300000',
    });
    expect(wrong.status).toBe(409);
    expect(await wrong.json()).toMatchObject({ error: 'OffsetMismatch', offset: 120_000 });
    // Not visible before it is complete.
    expect(await client.getArtifact(a.spec.sha256)).toBeUndefined();

    const done = await client.uploadArtifact(a.spec, a.file);
    expect(done).toEqual({ sha256: a.spec.sha256, size: 300_000, offset: 300_000, complete: true });
    expect((await client.listArtifacts()).map((x) => x.sha256)).toContain(a.spec.sha256);
    expect(existsSync(bpa.artifacts.pathOf(a.spec.sha256))).toBe(true);
  });

  it('refuses content whose sha256 differs from the declared one, and keeps nothing of it', async () => {
    const a = artifact(50_000);
    const forged = { ...a.spec, sha256: 'a'.repeat(64) };
    await expect(client.uploadArtifact(forged, a.file)).rejects.toMatchObject({
      peer: 'bpa',
      reason: 'ChecksumMismatch',
      retryable: false,
    });
    expect(await client.getArtifact(forged.sha256)).toBeUndefined();
    expect(await client.uploadStatus(forged.sha256)).toBeUndefined();
    expect(existsSync(bpa.artifacts.pathOf(forged.sha256))).toBe(false);
  });

  it('deletes, and answers 401 and 403 without the right token, and 400 naming the field', async () => {
    const a = artifact(10_000);
    await client.uploadArtifact(a.spec, a.file);
    expect(await client.deleteArtifact(a.spec.sha256)).toBe(true);
    expect(await client.getArtifact(a.spec.sha256)).toBeUndefined();
    expect(await client.deleteArtifact(a.spec.sha256)).toBe(false);

    expect((await fetch(`${url}/v1/artifacts`)).status).toBe(401);
    const reader = new BpaClient({ url, token: readOnly });
    await expect(reader.uploadArtifact(a.spec, a.file)).rejects.toMatchObject({
      reason: 'Forbidden',
      retryable: false,
    });
    const bad = await put(a.spec.sha256, 'type=nonsense&name=drv&version=1.0.0&size=1', Buffer.from('x'));
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { message: string }).message).toContain('querystring.type');

    const openapi = (await (await fetch(`${url}/openapi.json`)).json()) as { paths: Record<string, unknown> };
    expect(Object.keys(openapi.paths)).toEqual(
      expect.arrayContaining([
        '/v1/uploads/{sha256}',
        '/v1/jobs',
        '/v1/jobs/{id}/events',
        '/v1/clusters/{name}/kubeconfig',
        '/v1/secrets/{name}',
      ]),
    );
  });
});
