/**
 * What the worker adds to every activity: its length and outcome as a metric (the host steps, patchHost and
 * provisionHost among them), and the site and host it works on in every log record the activity context logger writes
 * (the SDK adds workflowId, activityType and the rest).
 */
import { CancelledFailure, type Context } from '@temporalio/activity';
import type {
  ActivityExecuteInput,
  ActivityInboundCallsInterceptor,
  ActivityInterceptors,
  ActivityInterceptorsFactory,
  GetLogAttributesInput,
  Next,
} from '@temporalio/worker';
import { metricNames, type Outcome } from './metric-names.ts';

/** The site and host an activity's input names: `{ site, host }`, a host as `{ name }`, or a plan's `site`. */
export function activitySubject(args: readonly unknown[]): { site?: string; host?: string } {
  const input = args[0];
  if (typeof input !== 'object' || input === null) return {};
  const { site, host } = input as { site?: unknown; host?: unknown };
  const hostName =
    typeof host === 'string'
      ? host
      : typeof host === 'object' && host !== null && typeof (host as { name?: unknown }).name === 'string'
        ? (host as { name: string }).name
        : undefined;
  return {
    ...(typeof site === 'string' && { site }),
    ...(hostName !== undefined && { host: hostName }),
  };
}

function outcomeOf(err: unknown, ctx: Context): Outcome {
  return err instanceof CancelledFailure || ctx.cancellationSignal.aborted ? 'cancelled' : 'failed';
}

export const activityObservability: ActivityInterceptorsFactory = (ctx: Context): ActivityInterceptors => {
  let subject: { site?: string; host?: string } = {};
  const inbound: ActivityInboundCallsInterceptor = {
    async execute(input: ActivityExecuteInput, next: Next<ActivityInboundCallsInterceptor, 'execute'>) {
      subject = activitySubject(input.args);
      const started = performance.now();
      const duration = ctx.metricMeter.createHistogram(metricNames.activityDuration, 'float', 's');
      const record = (outcome: Outcome) => {
        duration.record((performance.now() - started) / 1000, { outcome });
      };
      try {
        const result = await next(input);
        record('succeeded');
        return result;
      } catch (err) {
        record(outcomeOf(err, ctx));
        throw err;
      }
    },
  };
  return {
    inbound,
    outbound: {
      getLogAttributes: (input: GetLogAttributesInput, next) => next({ ...subject, ...input }),
    },
  };
};
