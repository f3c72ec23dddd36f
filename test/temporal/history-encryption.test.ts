// Needs: the real Temporal dev server (tools cache).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Client } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import proto from '@temporalio/proto';
import { siteHealthCheck } from '../../src/workflows/index.ts';
import { startHttpPeer } from '../support/http-peer.ts';
import { createTestWorker, startTemporal, testNamespace, uniqueName } from '../support/temporal.ts';

// A CommonJS package: Node's ESM loader sees only its default export.
const { temporal } = proto;

let env: TestWorkflowEnvironment;
let peer: Awaited<ReturnType<typeof startHttpPeer>>;

beforeAll(async () => {
  env = await startTemporal();
  peer = await startHttpPeer({});
});
afterAll(async () => {
  await peer.close();
  await env.teardown();
});

describe('what the Temporal server stores', () => {
  it('holds no clear text of a value that went through a workflow, activity and result', async () => {
    // A marker that travels as workflow input, activity input and output, and workflow result.
    const marker = `s3cr3t-${uniqueName('marker')}`;
    const taskQueue = uniqueName('codec');
    const worker = await createTestWorker(env, taskQueue);
    const workflowId = uniqueName('codec-check');
    const report = await worker.runUntil(
      env.client.workflow.execute(siteHealthCheck, {
        taskQueue,
        workflowId,
        args: [{ site: 'edge-01', endpoints: [{ name: 'bpa', url: `${peer.url}/${marker}` }] }],
      }),
    );
    expect(report.probes[0]?.url).toContain(marker);

    // Read the history as the server holds it, with a client that has no codec.
    const raw = new Client({ connection: env.connection, namespace: testNamespace });
    const response = await raw.workflowService.getWorkflowExecutionHistory({
      namespace: testNamespace,
      execution: { workflowId },
    });
    const bytes = Buffer.from(
      temporal.api.workflowservice.v1.GetWorkflowExecutionHistoryResponse.encode(response).finish(),
    );
    expect(response.history?.events?.length).toBeGreaterThan(5);
    expect(bytes.includes(marker)).toBe(false);
    expect(bytes.includes(Buffer.from(marker).toString('base64'))).toBe(false);
    expect(bytes.includes('binary/encrypted')).toBe(true);
  });
});
