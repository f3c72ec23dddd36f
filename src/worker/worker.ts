import { fileURLToPath } from 'node:url';
import { type NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { CodecKeys } from '../temporal/codec.ts';
import { dataConverter } from '../temporal/connection.ts';

export const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface WorkerSetup {
  connection: NativeConnection;
  namespace: string;
  codecKeys: CodecKeys;
  taskQueue: string;
  /** Activity name → implementation: the global worker's (createActivities and createSiteActivities) or a site's. */
  activities: NonNullable<WorkerOptions['activities']>;
  /** A prebuilt bundle (tests build it once); otherwise the workflows are bundled from source at start. */
  workflowBundle?: WorkerOptions['workflowBundle'];
  /**
   * `false`: an activity-only worker (a site agent), which never polls for workflow tasks, so that no workflow runs
   * away from the global controller and nothing is bundled.
   */
  workflows?: false;
}

export async function createWorker(setup: WorkerSetup): Promise<Worker> {
  const workflows =
    setup.workflows === false
      ? {}
      : setup.workflowBundle
        ? { workflowBundle: setup.workflowBundle }
        : { workflowsPath };
  return Worker.create({
    connection: setup.connection,
    namespace: setup.namespace,
    taskQueue: setup.taskQueue,
    activities: setup.activities,
    dataConverter: dataConverter(setup.codecKeys),
    ...workflows,
  });
}
