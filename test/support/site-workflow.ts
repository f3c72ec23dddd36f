import type { WorkflowStartOptions } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Workflow } from '@temporalio/workflow';
import { mockActivities, type Script } from './site-activities-mock.ts';
import { createTestWorker, uniqueName } from './temporal.ts';

/**
 * Runs one site workflow on the real dev server against mocked site activities, on a task queue of its own; the
 * outcome (result or error) is returned with the activities' call log and status writes.
 */
export async function runSiteWorkflow<W extends Workflow>(
  env: TestWorkflowEnvironment,
  workflow: W,
  input: Parameters<W>[0],
  script: Script,
  during?: (workflowId: string) => Promise<void>,
) {
  const taskQueue = uniqueName(workflow.name);
  const mock = mockActivities(script);
  const worker = await createTestWorker(env, taskQueue, mock.activities as never);
  const workflowId = uniqueName(`site/edge-01/${workflow.name}`);
  const outcome = await worker.runUntil(async () => {
    // One input argument: every site workflow takes a single object.
    const options = { taskQueue, workflowId, args: [input] } as unknown as WorkflowStartOptions<W>;
    const handle = await env.client.workflow.start(workflow, options);
    if (during) await during(workflowId);
    return handle.result().then(
      (result) => ({ result: result as Awaited<ReturnType<W>>, error: undefined }),
      (error: unknown) => ({ result: undefined, error }),
    );
  });
  return { ...mock, ...outcome, workflowId };
}
