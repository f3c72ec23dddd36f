import type { Client } from '@temporalio/client';
import { type SiteOperationType, workflowTypes } from '../domain/operations.ts';
import { type Store, StoreError } from '../store/index.ts';
import { siteOperationStart } from '../temporal/site-operation-start.ts';
import { runningOperations } from './temporal-status.ts';

export type StartSiteOperation = (
  site: string,
  operation: SiteOperationType,
  input: object,
) => Promise<{ workflowId: string; runId: string }>;

/** Starts a site's operation under its business key, refused (409) while another operation runs on the site. */
export function siteOperationStarter(deps: { store: Store; temporal: Client; taskQueue: string }): StartSiteOperation {
  const { store, temporal, taskQueue } = deps;
  return async (site, operation, input) => {
    await store.sites.get(site);
    // A site runs one operation at a time: a second one would fight the first over the same hosts.
    const running = await runningOperations(temporal, site);
    const first = running[0];
    if (first) {
      throw new StoreError(
        'Conflict',
        `site "${site}" is busy with ${first.type} (${first.workflowId}); wait for it or cancel it`,
      );
    }
    const handle = await temporal.workflow.start(workflowTypes[operation], {
      taskQueue,
      ...siteOperationStart(site, operation),
      workflowIdConflictPolicy: 'FAIL',
      args: [{ site, ...input }],
    });
    return { workflowId: handle.workflowId, runId: handle.firstExecutionRunId };
  };
}
