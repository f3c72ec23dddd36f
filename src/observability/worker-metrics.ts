/**
 * The worker's Prometheus endpoint. The SDK's Rust core serves it at `/metrics` on ICN_WORKER_METRICS_PORT (all
 * interfaces, for a scraper): the SDK's worker metrics (`temporal_*`: task slots, poll and schedule-to-start latencies,
 * workflow and activity outcomes) and, on the same endpoint, the project's own (src/observability/metric-names.ts),
 * which workflows and activities record through the SDK's metric meter. Durations are in seconds.
 */
import type { TelemetryOptions } from '@temporalio/worker';
import { histogramBuckets } from './metric-names.ts';

export function workerTelemetryOptions(port: number | undefined, host = '0.0.0.0'): TelemetryOptions | undefined {
  if (port === undefined) return undefined;
  return {
    metrics: {
      prometheus: {
        bindAddress: `${host}:${port}`,
        useSecondsForDurations: true,
        histogramBucketOverrides: histogramBuckets,
      },
    },
  };
}
