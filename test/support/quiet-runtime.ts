import { DefaultLogger, Runtime } from '@temporalio/worker';

/** Worker lifecycle chatter at INFO drowns test output; keep warnings and errors. */
export function quietTemporalRuntime(): void {
  try {
    Runtime.install({ logger: new DefaultLogger('WARN') });
  } catch {
    // Already installed by an earlier test file in this Jest worker process.
  }
}
