// Needs: the real Temporal dev server (tools cache); runs icnctl as a process against a listening API.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { startApiStack, tokens } from '../support/api.ts';
import { startHttpPeer } from '../support/http-peer.ts';

const icnctl = fileURLToPath(new URL('../../src/cli/icnctl.ts', import.meta.url));
const token = tokens.operator;
let stack: Awaited<ReturnType<typeof startApiStack>>;
let apiUrl: string;
let peer: Awaited<ReturnType<typeof startHttpPeer>>;

beforeAll(async () => {
  stack = await startApiStack();
  peer = await startHttpPeer({ '/ironic': 200, '/bpa': 503 });
  apiUrl = await stack.api.listen({ host: '127.0.0.1', port: 0 });
});
afterAll(async () => {
  await peer.close();
  await stack.stop();
});

async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [icnctl, '--server', apiUrl, ...args], {
      env: { ...process.env, ICN_API_TOKEN: token },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe('icnctl against a running API', () => {
  it('reports API and Temporal health', async () => {
    const r = await run('health');
    expect(r).toMatchObject({ code: 0 });
    expect(r.stdout).toContain('api: ok   temporal: ok');
  });

  it('checks a healthy site and exits 0, an unhealthy one and exits 1', async () => {
    const ok = await run('-o', 'json', 'check-site', 'edge-11', '-e', `ironic=${peer.url}/ironic`);
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ site: 'edge-11', healthy: true });
    const bad = await run('check-site', 'edge-12', '-e', `ironic=${peer.url}/ironic`, '-e', `bpa=${peer.url}/bpa`);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toMatch(/site edge-12: UNHEALTHY/);
  });

  it('names the field of bad input and exits 2', async () => {
    const r = await run('check-site', 'Bad_Name', '-e', 'ironic=not-a-url');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('params.site');
  });

  it('exits 3 when the token is refused', async () => {
    const r = await run('--token', 'wrong-token-0123456789', 'check-site', 'edge-13', '-e', `x=${peer.url}/ironic`);
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('401');
  });
});
