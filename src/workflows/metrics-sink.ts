/**
 * The project's metrics from workflow code. A workflow cannot do I/O: it hands each value to the SDK's own metrics sink
 * (`metricMeter` of @temporalio/workflow, a Temporal sink the worker always registers), which records it in the
 * worker's metric meter, served with the SDK's metrics on ICN_WORKER_METRICS_PORT. Nothing is emitted while a history
 * is replayed, so a worker that takes over a workflow counts nothing twice.
 *
 * This module is also a workflow interceptor module (src/worker/worker.ts bundles it): `interceptors` counts every
 * workflow as an operation started, then succeeded, failed or cancelled, by kind, without a line in the workflows.
 */
import {
  isCancellation,
  metricMeter,
  type Next,
  TemporalFailure,
  type WorkflowExecuteInput,
  type WorkflowInboundCallsInterceptor,
  type WorkflowInterceptorsFactory,
  workflowInfo,
} from '@temporalio/workflow';
import { workflowTypes } from '../domain/keys.ts';
import { metricNames, type Outcome } from '../observability/metric-names.ts';

const kinds = new Map<string, string>(Object.entries(workflowTypes).map(([kind, type]) => [type, kind]));

/** The operation a workflow type is: `install` for siteInstall, `rollout` for fleetRollout; others by type name. */
export function operationKind(workflowType: string): string {
  return kinds.get(workflowType) ?? workflowType;
}

class OperationMetrics implements WorkflowInboundCallsInterceptor {
  async execute(input: WorkflowExecuteInput, next: Next<WorkflowInboundCallsInterceptor, 'execute'>): Promise<unknown> {
    const info = workflowInfo();
    const kind = operationKind(info.workflowType);
    // A run continued as new goes on with the same operation.
    if (info.continuedFromExecutionRunId === undefined) {
      metricMeter.createCounter(metricNames.operationsStarted, 'operations').add(1, { kind });
    }
    try {
      const result = await next(input);
      ended(kind, 'succeeded');
      return result;
    } catch (err) {
      // A continue-as-new is no end; an error that is no TemporalFailure fails the workflow task, not the workflow.
      if (isCancellation(err)) ended(kind, 'cancelled');
      else if (err instanceof TemporalFailure) ended(kind, 'failed');
      throw err;
    }
  }
}

function ended(kind: string, outcome: Outcome): void {
  const seconds = (Date.now() - workflowInfo().startTime.getTime()) / 1000;
  metricMeter.createCounter(metricNames.operationsCompleted, 'operations').add(1, { kind, outcome });
  metricMeter
    .createHistogram(metricNames.operationDuration, 'float', 's')
    .record(Math.max(seconds, 0), { kind, outcome });
}

export const interceptors: WorkflowInterceptorsFactory = () => ({ inbound: [new OperationMetrics()] });

/**
 * A rollout's sites by state, as its progress query counts them; a count is sent again only when it changed. Nothing
 * is sent during a replay, so a worker that takes the rollout over sends every count once it runs it live.
 */
export class SitesGauge {
  private readonly sent = new Map<string, number>();

  report(rollout: string, operation: string, counts: Record<string, number>): void {
    if (workflowInfo().unsafe.isReplaying) return;
    const gauge = metricMeter.createGauge(metricNames.rolloutSites, 'int', 'sites');
    for (const [state, sites] of Object.entries(counts)) {
      if (this.sent.get(state) === sites) continue;
      this.sent.set(state, sites);
      gauge.set(sites, { rollout, operation, state });
    }
  }
}
