/**
 * The project's own Prometheus metrics, as the worker's metrics endpoint (ICN_WORKER_METRICS_PORT) serves them beside
 * the Temporal SDK's `temporal_*` ones. Workflow code imports these names: this module imports nothing.
 */
export const metricNames = {
  /** Counter: operations started, by `kind` (install, patch, upgrade, reconcile, rollout, …). */
  operationsStarted: 'icn_operations_started_total',
  /** Counter: operations ended, by `kind` and `outcome` (succeeded, failed, cancelled). */
  operationsCompleted: 'icn_operations_completed_total',
  /** Histogram: an operation's length from its start to its end, by `kind` and `outcome`, in seconds. */
  operationDuration: 'icn_operation_duration_seconds',
  /**
   * Histogram: one activity attempt's length, by `activityType` (patchHost, provisionHost, …: the host steps among
   * them) and `outcome` (succeeded, failed, cancelled), in seconds.
   */
  activityDuration: 'icn_activity_duration_seconds',
  /**
   * Gauge: a rollout's sites by `state` (total, pending, running, succeeded, failed, busy, cancelled, skipped), by
   * `rollout` id and `operation`. The last values stay once the rollout ended.
   */
  rolloutSites: 'icn_rollout_sites',
} as const;

/** How an operation or an activity attempt ended. */
export type Outcome = 'succeeded' | 'failed' | 'cancelled';

/** Histogram buckets in seconds: host steps take seconds to an hour; operations minutes to a day. */
export const histogramBuckets: Record<string, number[]> = {
  [metricNames.activityDuration]: [0.01, 0.05, 0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200],
  [metricNames.operationDuration]: [1, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14_400, 28_800, 86_400],
};
