import { DefaultLogger, type LogEntry, Runtime } from '@temporalio/worker';
import type { Logger } from '../observability/logger.ts';

const levels = { TRACE: 'trace', DEBUG: 'debug', INFO: 'info', WARN: 'warn', ERROR: 'error' } as const;

/** Routes the SDK's own logs (worker, workflows, activities) through the project's redacting logger. */
export function installRuntimeLogger(logger: Logger): void {
  Runtime.install({
    logger: new DefaultLogger('INFO', (entry: LogEntry) => {
      logger[levels[entry.level]](entry.meta ?? {}, entry.message);
    }),
  });
}
