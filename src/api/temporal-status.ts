import {
  type Client,
  type WorkflowExecutionDescription,
  type WorkflowHandle,
  WorkflowNotFoundError,
} from '@temporalio/client';
import {
  type OperationProgress,
  type OperationStatus,
  RecordedProgress,
  SiteOperationType,
  progressQuery,
  siteOperationId,
} from '../domain/operations.ts';
import { operationAttribute, siteAttribute } from '../temporal/search-attributes.ts';

/**
 * An operation's state as Temporal has it: visibility for what and when, the workflow's own `progress` query while it
 * runs (bounded, so a site whose worker is down answers without progress instead of hanging), the result or failure
 * once closed.
 */
export async function operationStatus(temporal: Client, handle: WorkflowHandle): Promise<OperationStatus> {
  const d: WorkflowExecutionDescription = await handle.describe();
  const status: OperationStatus = {
    workflowId: d.workflowId,
    runId: d.runId,
    type: d.type,
    status: d.status.name,
    startTime: d.startTime.toISOString(),
    ...(d.closeTime && { closeTime: d.closeTime.toISOString() }),
  };
  const site = d.typedSearchAttributes.get(siteAttribute);
  const operation = d.typedSearchAttributes.get(operationAttribute);
  if (site !== undefined) status.site = site;
  if (operation !== undefined) status.operation = operation;
  // A closed workflow answers queries too (a worker replays it), so a finished operation still shows where it ended.
  const progress = await temporal
    .withDeadline(Date.now() + 2000, () => handle.query<OperationProgress>(progressQuery))
    .catch(() => undefined);
  if (progress) {
    status.progress = progress;
  } else {
    // Too busy to answer in time (a rollout of thousands of sites) or no worker up: what it last recorded, dated.
    const recorded = RecordedProgress.safeParse(d.memo?.progress);
    if (recorded.success) {
      const { at, ...last } = recorded.data;
      status.progress = { ...last, items: {} };
      status.progressAsOf = at;
    }
  }
  if (d.status.name === 'COMPLETED') {
    status.result = await handle.result();
  } else if (d.status.name === 'FAILED') {
    status.failure = await handle.result().then(
      () => undefined,
      (err: unknown) =>
        err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err),
    );
  }
  return status;
}

/**
 * Running operations of a site, by describing its business-key workflow ids: exact at once, where visibility would
 * lag behind an operation started a moment ago.
 */
export async function runningOperations(
  temporal: Client,
  site: string,
): Promise<{ workflowId: string; type: string }[]> {
  const described = await Promise.all(
    SiteOperationType.options.map((op) =>
      temporal.workflow
        .getHandle(siteOperationId(site, op))
        .describe()
        .catch((err: unknown) => {
          if (err instanceof WorkflowNotFoundError) return undefined;
          throw err;
        }),
    ),
  );
  return described
    .filter((d) => d?.status.name === 'RUNNING')
    .map((d) => ({ workflowId: d?.workflowId ?? '', type: d?.type ?? '' }));
}
