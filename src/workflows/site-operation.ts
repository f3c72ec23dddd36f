import {
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  proxyLocalActivities,
  workflowInfo,
} from '@temporalio/workflow';
import type { RolloutSiteEnded, SiteOperationType } from '../domain/operations.ts';
import type { SiteStatus } from '../domain/site.ts';
import type { ProgressTracker } from './progress.ts';
import type { Saga } from './saga.ts';
import type { FleetActivities } from './rollout-activities.ts';
import { inventoryActivities as inventory } from './site-activities-options.ts';

/**
 * Retried until the rollout hears it (a rollout that is gone answers at once): a rollout that continued as new learns
 * of a site's end from nothing else. Past a day the rollout's own sweep is all that is left.
 */
const rollouts = proxyLocalActivities<Pick<FleetActivities, 'reportSiteOutcome'>>({
  startToCloseTimeout: '30 seconds',
  scheduleToCloseTimeout: '1 day',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '5 minutes' },
});

/**
 * Runs a site operation and, when a rollout started it, tells the rollout how it ended (succeeded, failed and why,
 * cancelled) before it closes: the rollout does not wait on its sites across continue-as-new.
 */
export async function reportingToRollout<T>(
  input: { site: string; rollout?: string | undefined },
  run: () => Promise<T>,
): Promise<T> {
  const { site, rollout } = input;
  if (rollout === undefined) return run();
  const report = (ended: RolloutSiteEnded) =>
    CancellationScope.nonCancellable(() => rollouts.reportSiteOutcome({ rollout, ended })).catch(() => undefined);
  let result: T;
  try {
    result = await run();
  } catch (err) {
    await report(
      isCancellation(err)
        ? { site, outcome: 'cancelled' }
        : { site, outcome: 'failed', reason: failureMessage(err).slice(0, 500) },
    );
    throw err;
  }
  await report({ site, outcome: 'succeeded' });
  return result;
}

export type SiteOperationKind = SiteOperationType;

/** The site's status says which operation runs it, so that the inventory shows who is changing a site. */
export async function recordOperationStarted(site: string, kind: SiteOperationKind, phase: SiteStatus['phase']) {
  await inventory.recordSiteStatus({
    site,
    status: { phase, operation: { workflowId: workflowInfo().workflowId, type: kind } },
  });
}

export interface FailureContext {
  site: string;
  kind: SiteOperationKind;
  progress: ProgressTracker;
  saga: Saga;
  /** Leave what was done in place for diagnosis instead of compensating (not on a cancel: the operator asked). */
  keepOnFailure?: boolean;
  /** The site's phase once everything the operation did is undone: a patch undone leaves the site as it was. */
  undonePhase: SiteStatus['phase'];
  undoneMessage?: string;
}

/**
 * What every site operation does when a step fails or it is cancelled: compensate in reverse (or keep, and say
 * where), record how the site was left, even after a cancel, and fail with the step it stopped at.
 */
export async function failOperation(ctx: FailureContext, err: unknown): Promise<never> {
  const stoppedAt = ctx.progress.current.step;
  const cancelled = isCancellation(err);
  const reason = cancelled ? 'cancelled' : failureMessage(err);
  const record = (phase: SiteStatus['phase'], message: string) =>
    CancellationScope.nonCancellable(() => inventory.recordSiteStatus({ site: ctx.site, status: { phase, message } }));
  if (ctx.keepOnFailure && !cancelled) {
    await record('Failed', `stopped at "${stoppedAt}": ${reason}; kept for diagnosis (${ctx.saga.pending.join(', ')})`);
    throw err;
  }
  ctx.progress.step(`compensating (failed at "${stoppedAt}")`);
  const failed = await ctx.saga.compensate();
  const where = `${ctx.kind} ${reason} at "${stoppedAt}"`;
  if (failed.length === 0) {
    await record(ctx.undonePhase, `${where}; ${ctx.undoneMessage ?? 'everything it had done was undone'}`);
  } else {
    await record('Failed', `${where}; compensations that failed: ${failed.join(', ')}`);
  }
  ctx.progress.step(`failed at "${stoppedAt}"`);
  if (cancelled) throw err;
  throw ApplicationFailure.create({
    type: `Site${ctx.kind[0]?.toUpperCase() ?? ''}${ctx.kind.slice(1)}Failed`,
    message: `${ctx.kind} of ${ctx.site} failed at "${stoppedAt}": ${reason}`,
    cause: err instanceof Error ? err : undefined,
    nonRetryable: true,
  });
}

/** The innermost message: an activity failure wraps the activity's own error as its cause. */
export function failureMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  return err.cause instanceof Error ? failureMessage(err.cause) : err.message;
}
