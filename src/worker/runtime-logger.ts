import { DefaultLogger, type LogEntry, type LogLevel, Runtime } from '@temporalio/worker';
import type { Logger } from '../observability/logger.ts';
import { workerTelemetryOptions } from '../observability/worker-metrics.ts';

const levels = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;
const sdkLevels: Record<string, LogLevel> = {
  trace: 'TRACE',
  debug: 'DEBUG',
  info: 'INFO',
  warn: 'WARN',
  error: 'ERROR',
  fatal: 'ERROR',
  silent: 'ERROR',
};

/**
 * The SDK's logs (worker, workflows, activities) as pino records: each record keeps the SDK's fields (workflowId,
 * workflowRunId, activityType, attempt, and the site and host that src/observability/activity-interceptors.ts adds),
 * and an `error` field is logged as pino's `err` (type, message, stack) instead of an empty object. An activity's task
 * token is left out: a long string in every record, and enough to complete the activity in someone else's hands.
 */
export function sdkLogger(logger: Logger): DefaultLogger {
  return new DefaultLogger(sdkLevels[logger.level] ?? 'INFO', (entry: LogEntry) => {
    const { error, taskToken: _taskToken, ...meta } = entry.meta ?? {};
    logger[levels[entry.level]](error === undefined ? meta : { ...meta, err: error }, entry.message);
  });
}

/**
 * Installs the process's Temporal runtime: the SDK's logs through the project's redacting logger and, with a metrics
 * port, the worker's Prometheus endpoint (src/observability/worker-metrics.ts). Once per process, before any worker.
 */
export function installRuntimeLogger(logger: Logger, telemetry: { workerMetricsPort?: number | undefined } = {}): void {
  const telemetryOptions = workerTelemetryOptions(telemetry.workerMetricsPort);
  Runtime.install({ logger: sdkLogger(logger), ...(telemetryOptions && { telemetryOptions }) });
}
