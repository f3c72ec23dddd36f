import { randomUUID } from 'node:crypto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { freePort } from '../../deploy/dev/lab/processes.ts';
import { startTemporalDevServer } from '../../deploy/dev/temporal-dev-server.ts';
import { temporalCli, toolPath } from '../../deploy/dev/tools.ts';
import { dataConverter } from '../../src/temporal/connection.ts';
import { type Activities, createActivities } from '../../src/activities/index.ts';
import { createWorker, workflowsPath } from '../../src/worker/worker.ts';
import { quietTemporalRuntime } from './quiet-runtime.ts';
import { testCodecKeys } from './test-codec-keys.ts';

quietTemporalRuntime();

export const testNamespace = 'icn';

/**
 * The real Temporal dev server (the CLI built into the tools cache), in memory on a free port, with the project's
 * namespace, search attributes and encrypting data converter. The server is started here rather than by
 * TestWorkflowEnvironment.createLocal, whose launcher gives it a fixed 5 s: CI missed that once with two test files
 * starting servers at the same time beside the lab's peers. Tearing the environment down stops the server.
 */
export async function startTemporal(): Promise<TestWorkflowEnvironment> {
  return (await startTemporalServer()).env;
}

/** startTemporal, with more arguments for the server, and the server's process id (the benchmark reads its CPU). */
export async function startTemporalServer(
  extraArgs: string[] = [],
): Promise<{ env: TestWorkflowEnvironment; pid: number }> {
  const path = toolPath(temporalCli);
  let server;
  try {
    server = await startTemporalDevServer({
      port: await freePort(),
      namespace: testNamespace,
      output: 'quiet',
      extraArgs,
    });
  } catch (err) {
    throw new Error(`the Temporal dev server (${path}) did not start: ${String(err)}. Run "npm run tools".`, {
      cause: err,
    });
  }
  const env = await testEnvironmentOn(server.address, testNamespace, () => server.stop());
  return { env, pid: server.process.pid ?? 0 };
}

/**
 * A test environment on a server already started (the dev server, the server on PostgreSQL) with the project's
 * encrypting data converter. Tearing it down, or failing to connect, calls `stop`, which owns the server.
 */
export async function testEnvironmentOn(
  address: string,
  namespace: string,
  stop: () => Promise<void>,
): Promise<TestWorkflowEnvironment> {
  try {
    const env = await TestWorkflowEnvironment.createFromExistingServer({
      address,
      namespace,
      client: { dataConverter: dataConverter(testCodecKeys) },
    });
    const teardown = env.teardown.bind(env);
    env.teardown = async () => {
      try {
        await teardown();
      } finally {
        await stop();
      }
    };
    return env;
  } catch (err) {
    await stop();
    throw err;
  }
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

/** Bundling the workflows takes seconds: do it once per test file. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath, logger: quietBundlerLogger });
  return bundle;
}

const noop = () => undefined;
/** A bundler logger that says nothing: webpack's output would bury the tests' own. */
export const quietBundlerLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop };

/** Each test gets its own task queue and workflow ids so that tests never see each other's work. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${randomUUID().slice(0, 8)}`;
}

/** A worker of the project's workflows on its own task queue, with real activities unless a test gives others. */
export async function createTestWorker(
  env: TestWorkflowEnvironment,
  taskQueue: string,
  activities: Activities = createActivities({ fetch: globalThis.fetch, probeTimeoutMs: 2000 }),
): Promise<Worker> {
  return createWorker({
    connection: env.nativeConnection,
    namespace: testNamespace,
    codecKeys: testCodecKeys,
    taskQueue,
    activities,
    workflowBundle: await workflowBundle(),
  });
}
