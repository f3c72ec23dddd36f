import { proxyActivities, proxyLocalActivities, workflowInfo, type ActivityOptions } from '@temporalio/workflow';
import { defaultHostTakeoverSeconds } from '../domain/keys.ts';
import type { SitePlan } from '../domain/plan.ts';
import type { InventoryActivities, SiteActivities } from './site-activities.ts';

export const quickRetry: ActivityOptions['retry'] = {
  initialInterval: '1 second',
  backoffCoefficient: 2,
  maximumInterval: '30 seconds',
};

/**
 * The inventory (the global controller's store) as local activities, for the short reads and writes at the start and
 * end of an operation: run by the workflow's own worker inside its workflow task, each is one history event instead
 * of six, which keeps a site operation's history to a fixed share plus its hosts'.
 */
export const inventoryActivities = proxyLocalActivities<InventoryActivities>({
  startToCloseTimeout: '1 minute',
  retry: quickRetry,
});

/**
 * Up to this much a site lacks is sent within a workflow task: seconds on a site's link (≈ 6 s at 100 Mbit/s), well
 * inside a local activity's 5 minutes even on a slow one.
 */
export const smallUploadMaxBytes = 64 * 2 ** 20;

/** The task queue of a site's activities: its own when a worker runs at the site (agent mode `local`). */
export function siteTaskQueue(plan: SitePlan): string {
  return plan.spec.agentMode === 'local' ? `site.${plan.site}` : workflowInfo().taskQueue;
}

/**
 * Activities that reach inside the site run on the site's task queue when a worker runs there (agent mode `local`),
 * otherwise on this workflow's own queue, served by the global worker.
 */
export function siteActivities(plan: SitePlan, hostTakeoverSeconds = defaultHostTakeoverSeconds) {
  const taskQueue = siteTaskQueue(plan);
  const quick = proxyActivities<SiteActivities>({ taskQueue, startToCloseTimeout: '1 minute', retry: quickRetry });
  return {
    // Brief steps (a read or two inside the site) run within the workflow task when this worker serves the site: one
    // history event instead of six and no round trip through the server (at 10,000 sites, a sixth of an operation's
    // fixed events). A site agent's steps stay on its own queue: only it reaches inside the site.
    brief:
      taskQueue === workflowInfo().taskQueue
        ? proxyLocalActivities<SiteActivities>({ startToCloseTimeout: '1 minute', retry: quickRetry })
        : quick,
    // Quick steps (a few API calls) are retried soon after a worker dies mid-call: nothing tells of it but the timeout.
    quick,
    // Long steps heartbeat; a worker that dies is noticed within 30 s and the step resumes elsewhere.
    long: proxyActivities<SiteActivities>({
      taskQueue,
      startToCloseTimeout: '2 hours',
      heartbeatTimeout: '30 seconds',
      retry: quickRetry,
    }),
    // Artifacts small enough to send within a workflow task (a few packages, a chart: `smallUploadMaxBytes`) when this
    // worker serves the site: one history event instead of the six of an activity and the workflow task after it,
    // and no wait on the server between them (at 10,000 sites, a fifth of what starting a site cost). Larger ones
    // (an OS image) or a site agent's are a long step, heartbeating its offset.
    upload:
      taskQueue === workflowInfo().taskQueue
        ? proxyLocalActivities<SiteActivities>({ startToCloseTimeout: '5 minutes', retry: quickRetry })
        : undefined,
    // A host's maintenance (minutes: drain, packages, a bare-metal reboot), thousands at once in a fleet rollout.
    // Heartbeats are what the Temporal server spends most on then (measured: 4 in 5 of its workflow writes with
    // 6,000 hosts in flight; with 10,000 sites, 3 of a host's 6). The SDK sends them every 0.8 × the timeout, at most
    // every maxHeartbeatThrottleInterval (src/worker/worker.ts, 2 minutes), and patchHost sends its first after two
    // thirds of it: the default 150 s timeout beats at 100 s and every 120 s after, two for a 5-minute host (three at
    // 2 minutes) and none for one under 100 s. A worker that dies is noticed within the timeout (the patch's
    // hostTakeoverSeconds), and the host resumes after its last step done.
    host: proxyActivities<SiteActivities>({
      taskQueue,
      startToCloseTimeout: '2 hours',
      heartbeatTimeout: hostTakeoverSeconds * 1000,
      retry: quickRetry,
    }),
  };
}
