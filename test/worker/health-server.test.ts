// Needs: the real Temporal dev server (tools cache): the health follows a real worker's state.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { startWorkerHealth } from '../../src/worker/health-server.ts';
import { createTestWorker, startTemporal, uniqueName } from '../support/temporal.ts';

let env: TestWorkflowEnvironment;
beforeAll(async () => {
  env = await startTemporal();
});
afterAll(async () => {
  await env.teardown();
});

describe('worker health endpoint', () => {
  it('answers 200 while the worker runs and 503 once it has stopped', async () => {
    const worker = await createTestWorker(env, uniqueName('health'));
    const health = await startWorkerHealth(worker, { port: 0, host: '127.0.0.1' });
    const url = `http://127.0.0.1:${health.port.toString()}`;
    try {
      const running = worker.run();
      for (let i = 0; i < 50 && worker.getState() !== 'RUNNING'; i++) await new Promise((r) => setTimeout(r, 100));
      const up = await fetch(`${url}/healthz`);
      expect(up.status).toBe(200);
      expect(await up.json()).toEqual({ state: 'RUNNING' });
      expect((await fetch(`${url}/nope`)).status).toBe(404);
      worker.shutdown();
      await running;
      const down = await fetch(`${url}/readyz`);
      expect(down.status).toBe(503);
      expect(await down.json()).toEqual({ state: 'STOPPED' });
    } finally {
      await health.close();
    }
  });
});
