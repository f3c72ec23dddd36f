import { fileURLToPath } from 'node:url';
import { type NativeConnection, Worker, type WorkerOptions } from '@temporalio/worker';
import { activityObservability } from '../observability/activity-interceptors.ts';
import { clientInterceptors, processTracing, type Tracing, tracingWorkflowModule } from '../observability/tracing.ts';
import type { WorkerTuning } from '../domain/config.ts';
import type { CodecKeys } from '../temporal/codec.ts';
import { dataConverter } from '../temporal/connection.ts';

export const workflowsPath = fileURLToPath(new URL('../workflows/index.ts', import.meta.url));

/** The workflow interceptor module that counts operations (src/workflows/metrics-sink.ts). */
const operationMetricsModule = fileURLToPath(new URL('../workflows/metrics-sink.ts', import.meta.url));

/**
 * The workflow interceptor modules a workflow bundle carries: the operation metrics always, the tracing's with
 * tracing. A prebuilt bundle (bundleWorkflowCode) needs them as `workflowInterceptorModules` for the same behaviour.
 */
export function workflowInterceptorModules(tracing: boolean): string[] {
  return [operationMetricsModule, ...(tracing ? [tracingWorkflowModule] : [])];
}

/**
 * The SDK sends an activity's heartbeats at most every 0.8 × its heartbeat timeout, capped by this (60 s by default).
 * Host steps (a 150 s timeout, minutes long, thousands at once in a rollout) then beat every 120 s instead of every
 * 60: half of the server's heartbeat writes, and a worker that dies is still noticed after the same 150 s.
 */
export const maxHeartbeatThrottleInterval = '2 minutes';

/**
 * How long a workflow task waits on this worker's own (sticky) queue before the server offers it to any worker, which
 * must then replay the whole history (the SDK's default is 10 s). In a 10,000-site rollout the worker is busy for
 * minutes; measured with 10 s, a site's next step timed out there and then queued behind the other sites' first tasks
 * on the shared queue: 231 s between two hosts. A worker that stops cleanly hands its workflows back at once; tasks
 * already queued for one that dies wait up to this long, about as long as its hosts' steps take to be noticed (their
 * heartbeat timeout).
 */
export const stickyQueueScheduleToStartTimeout = '2 minutes';

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
  /**
   * OpenTelemetry tracing (src/observability/tracing.ts); by default the process's, from the OTEL_* environment, or
   * none (`false`). A prebuilt bundle must carry its workflow module (workflowInterceptorModules(true)).
   */
  tracing?: Tracing | false;
  /** Capacity options (slots, cache, pollers); the SDK's defaults for those absent. */
  tuning?: WorkerTuning;
}

export async function createWorker(setup: WorkerSetup): Promise<Worker> {
  const tracing = setup.tracing === undefined ? processTracing('icn-worker') : setup.tracing || undefined;
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
    maxHeartbeatThrottleInterval,
    stickyQueueScheduleToStartTimeout,
    ...setup.tuning,
    ...workflows,
    interceptors: {
      activity: [activityObservability, ...(tracing ? [tracing.activityInterceptors] : [])],
      ...('workflowsPath' in workflows && { workflowModules: workflowInterceptorModules(tracing !== undefined) }),
      ...(tracing && { client: clientInterceptors(undefined, tracing) }),
    },
    ...(tracing && setup.workflows !== false && { sinks: tracing.sinks }),
  });
}
