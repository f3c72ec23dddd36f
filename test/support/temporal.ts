import { randomUUID } from 'node:crypto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type Worker, type WorkflowBundleWithSourceMap } from '@temporalio/worker';
import { temporalCli, toolPath } from '../../deploy/dev/tools.ts';
import { dataConverter } from '../../src/temporal/connection.ts';
import { searchAttributes } from '../../src/temporal/search-attributes.ts';
import { type Activities, createActivities } from '../../src/activities/index.ts';
import { createWorker, workflowsPath } from '../../src/worker/worker.ts';
import { quietTemporalRuntime } from './quiet-runtime.ts';
import { testCodecKeys } from './test-codec-keys.ts';

quietTemporalRuntime();

export const testNamespace = 'icn';

/**
 * The real Temporal dev server (the CLI built into the tools cache), on a free port, with the project's namespace,
 * search attributes and encrypting data converter.
 */
export async function startTemporal(): Promise<TestWorkflowEnvironment> {
  const path = toolPath(temporalCli);
  try {
    return await TestWorkflowEnvironment.createLocal({
      server: {
        executable: { type: 'existing-path', path },
        namespace: testNamespace,
        searchAttributes,
        ip: '127.0.0.1',
      },
      client: { dataConverter: dataConverter(testCodecKeys) },
    });
  } catch (err) {
    throw new Error(`the Temporal dev server (${path}) did not start: ${String(err)}. Run "npm run tools".`, {
      cause: err,
    });
  }
}

let bundle: Promise<WorkflowBundleWithSourceMap> | undefined;

/** Bundling the workflows takes seconds: do it once per test file. */
export function workflowBundle(): Promise<WorkflowBundleWithSourceMap> {
  bundle ??= bundleWorkflowCode({ workflowsPath, logger: quietBundlerLogger });
  return bundle;
}

const noop = () => undefined;
const quietBundlerLogger = { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop };

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
