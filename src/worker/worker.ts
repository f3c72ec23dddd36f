import { fileURLToPath } from 'node:url';
import { type NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import type { Config } from '../domain/config.ts';
import type { Activities } from '../activities/index.ts';
import { dataConverter } from '../temporal/connection.ts';

export const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

export interface WorkerSetup {
  connection: NativeConnection;
  config: Pick<Config, 'codec' | 'temporal'>;
  taskQueue: string;
  activities: Activities;
  /** A prebuilt bundle (tests build it once); otherwise the workflows are bundled from source at start. */
  workflowBundle?: WorkerOptions['workflowBundle'];
}

export async function createWorker(setup: WorkerSetup): Promise<Worker> {
  return Worker.create({
    connection: setup.connection,
    namespace: setup.config.temporal.namespace,
    taskQueue: setup.taskQueue,
    activities: setup.activities,
    dataConverter: dataConverter(setup.config),
    ...(setup.workflowBundle ? { workflowBundle: setup.workflowBundle } : { workflowsPath }),
  });
}
