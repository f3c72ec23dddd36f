// Needs: the real Temporal dev server (tools cache), and the SDK patch of patches/ (npm's postinstall applies it).
/**
 * The worker's workflow deadlock timeout (ICN_WORKER_WORKFLOW_DEADLOCK_TIMEOUT_MS, the SDK's isolateExecutionTimeout):
 * set, an activation that computes past it fails its workflow task; 0, the patched SDK runs the sandbox without its
 * watchdog thread, and the same activation runs to the end.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { createWorker } from '../../src/worker/worker.ts';
import { quietBundlerLogger, startTemporal, testNamespace, uniqueName } from '../support/temporal.ts';
import { testCodecKeys } from '../support/test-codec-keys.ts';
import { spin } from './fixtures/spin-workflow.ts';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;
/**
 * Iterations of spin() that took about 6 s when measured. The measure runs beside other test files: measured at a
 * tenth of the speed the workflow later gets (a fresh-clone CI run saw such a swing), they take 0.6 s, within the 1 s
 * timeout under test, so the test of the timeout runs ten times as many: at least 6 s, stopped after 1.
 */
let iterations: number;

beforeAll(async () => {
  [env, bundle] = await Promise.all([
    startTemporal(),
    bundleWorkflowCode({
      workflowsPath: new URL('./fixtures/spin-workflow.ts', import.meta.url).pathname,
      logger: quietBundlerLogger,
    }),
  ]);
  const sample = 20_000_000;
  const started = performance.now();
  await spin(sample);
  iterations = Math.round((sample / (performance.now() - started)) * 6000);
});
afterAll(async () => {
  await env.teardown();
});

async function runSpin(isolateExecutionTimeout: number, spins: number) {
  const taskQueue = uniqueName('deadlock');
  const worker = await createWorker({
    connection: env.nativeConnection,
    namespace: testNamespace,
    codecKeys: testCodecKeys,
    taskQueue,
    activities: {},
    workflowBundle: bundle,
    tracing: false,
    tuning: { isolateExecutionTimeout },
  });
  const handle = await env.client.workflow.start(spin, {
    taskQueue,
    workflowId: uniqueName('spin'),
    args: [spins],
  });
  return { worker, handle };
}

describe('the workflow deadlock timeout', () => {
  it('fails a workflow task that computes past it', async () => {
    const spins = iterations * 10;
    const { worker, handle } = await runSpin(1000, spins);
    const failure = await worker.runUntil(async () => {
      for (;;) {
        const { events } = await handle.fetchHistory();
        const failed = events?.find((e) => e.workflowTaskFailedEventAttributes);
        if (failed) return failed.workflowTaskFailedEventAttributes?.failure?.message;
        if (events?.some((e) => e.workflowExecutionCompletedEventAttributes)) {
          return `spin(${spins}) completed within the timeout: nothing was stopped`;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    });
    // Failed tasks are retried: the workflow runs on until it is stopped here.
    if (failure?.startsWith('spin(') !== true) await handle.terminate('test done');
    expect(failure).toMatch(/Script execution timed out after 1000ms/);
  });

  it('0: no watchdog, the same activation runs to its end', async () => {
    // Unpatched, the SDK hands Node a timeout of 0, which it refuses: every workflow task would fail.
    const sandbox = createRequire(import.meta.url).resolve('@temporalio/worker/lib/workflow/reusable-vm.js');
    if (!readFileSync(sandbox, 'utf8').includes('isolateExecutionTimeoutMs || undefined')) {
      throw new Error(`${sandbox} is not patched: run "npm ci" (its postinstall applies patches/)`);
    }
    const { worker, handle } = await runSpin(0, iterations);
    const result = await worker.runUntil(
      Promise.race([
        handle.result(),
        new Promise<never>((_, reject) => {
          setTimeout(() => {
            reject(new Error('spin did not complete within 60 s'));
          }, 60_000).unref();
        }),
      ]),
    );
    expect(result).toBe(await spin(iterations));
    const { events } = await handle.fetchHistory();
    expect(events?.filter((e) => e.workflowTaskFailedEventAttributes)).toEqual([]);
  });
});
