// Needs: the real Temporal dev server (tools cache), and the SDK patch of patches/ (npm's postinstall applies it).
/**
 * ICN_WORKER_WORKFLOW_STACK_TRACES: by default the SDK records a stack per promise a workflow makes and answers the
 * stack trace query (the Web UI's Stack Trace tab) with where the workflow waits; `off` leaves the recording out and
 * the query answers that stack traces are not enabled. The SDK's workflow threads read it from the environment when
 * the worker creates them.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { ConfigEnv } from '../../src/domain/config.ts';
import { createWorker } from '../../src/worker/worker.ts';
import { quietBundlerLogger, startTemporal, testNamespace, uniqueName } from '../support/temporal.ts';
import { testCodecKeys } from '../support/test-codec-keys.ts';
import { waitAnHour } from './fixtures/waiting-workflow.ts';

let env: TestWorkflowEnvironment;
let bundle: WorkflowBundleWithSourceMap;

beforeAll(async () => {
  [env, bundle] = await Promise.all([
    startTemporal(),
    bundleWorkflowCode({
      workflowsPath: new URL('./fixtures/waiting-workflow.ts', import.meta.url).pathname,
      logger: quietBundlerLogger,
    }),
  ]);
});
afterAll(async () => {
  delete process.env.ICN_WORKER_WORKFLOW_STACK_TRACES;
  await env.teardown();
});

/** The stack trace query's answer (or its error) for a waiting workflow on a worker created with `setting`. */
async function stackTraceWith(setting: 'on' | 'off' | undefined): Promise<string> {
  if (setting === undefined) delete process.env.ICN_WORKER_WORKFLOW_STACK_TRACES;
  else process.env.ICN_WORKER_WORKFLOW_STACK_TRACES = setting;
  const taskQueue = uniqueName('stack-traces');
  const worker = await createWorker({
    connection: env.nativeConnection,
    namespace: testNamespace,
    codecKeys: testCodecKeys,
    taskQueue,
    activities: {},
    workflowBundle: bundle,
    tracing: false,
  });
  const handle = await env.client.workflow.start(waitAnHour, { taskQueue, workflowId: uniqueName('wait') });
  try {
    return await worker.runUntil(
      handle.query<string>('__stack_trace').catch((err: unknown) => `error: ${(err as Error).message}`),
    );
  } finally {
    await handle.terminate('test done');
  }
}

describe('workflow stack traces', () => {
  it('by default, the stack trace query shows where the workflow waits', async () => {
    expect(await stackTraceWith(undefined)).toContain('waitAnHour');
  });

  it('off: the worker records no stacks, and the query says so', async () => {
    expect(await stackTraceWith('off')).toMatch(/stack traces are not enabled/);
    // A worker created after it is on again records them again.
    expect(await stackTraceWith('on')).toContain('waitAnHour');
  });

  it('the setting is validated with the rest of the configuration', () => {
    expect(ConfigEnv.shape.ICN_WORKER_WORKFLOW_STACK_TRACES.safeParse('of').success).toBe(false);
    expect(ConfigEnv.shape.ICN_WORKER_WORKFLOW_STACK_TRACES.parse('off')).toBe('off');
  });
});
