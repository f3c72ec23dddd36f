// Needs: the real Temporal dev server (tools cache).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { siteHealthCheck } from '../../src/workflows/index.ts';
import { recordHistory } from '../support/histories.ts';
import { closedPort, startHttpPeer } from '../support/http-peer.ts';
import { createTestWorker, startTemporal, uniqueName } from '../support/temporal.ts';

let env: TestWorkflowEnvironment;
let peer: Awaited<ReturnType<typeof startHttpPeer>>;

beforeAll(async () => {
  env = await startTemporal();
  peer = await startHttpPeer({ '/ironic': 200, '/bpa': 503 });
});
afterAll(async () => {
  await peer.close();
  await env.teardown();
});

async function runHealthCheck(endpoints: { name: string; url: string }[]) {
  const taskQueue = uniqueName('health');
  const worker = await createTestWorker(env, taskQueue);
  return worker.runUntil(async () => {
    const handle = await env.client.workflow.start(siteHealthCheck, {
      taskQueue,
      workflowId: uniqueName('site/edge-01/health-check'),
      args: [{ site: 'edge-01', endpoints }],
    });
    return { report: await handle.result(), handle };
  });
}

describe('siteHealthCheck on the real dev server', () => {
  it('reports a site healthy when every endpoint answers', async () => {
    const { report, handle } = await runHealthCheck([{ name: 'ironic', url: `${peer.url}/ironic` }]);
    expect(report).toMatchObject({ site: 'edge-01', healthy: true });
    expect(report.probes).toEqual([expect.objectContaining({ name: 'ironic', reachable: true, httpStatus: 200 })]);
    recordHistory(env, handle.workflowId, 'site-health-check');
  });

  it('reports each unreachable or failing endpoint and the site unhealthy', async () => {
    const port = await closedPort();
    const { report } = await runHealthCheck([
      { name: 'ironic', url: `${peer.url}/ironic` },
      { name: 'bpa', url: `${peer.url}/bpa` },
      { name: 'apiserver', url: `http://127.0.0.1:${port}/` },
    ]);
    expect(report.healthy).toBe(false);
    const byName = Object.fromEntries(report.probes.map((p) => [p.name, p]));
    expect(byName.ironic).toMatchObject({ reachable: true, httpStatus: 200 });
    expect(byName.bpa).toMatchObject({ reachable: false, httpStatus: 503 });
    expect(byName.apiserver).toMatchObject({ reachable: false });
    expect(byName.apiserver?.error).toMatch(/ECONNREFUSED|fetch failed/);
  });
});
