/**
 * A request's deadline: its signal aborts after `ms`, and `clear` ends it once the answer is read. A timer of its own
 * rather than AbortSignal.timeout, whose timer fired long after most answers and built an error each time.
 */
export interface RequestDeadline {
  readonly signal: AbortSignal;
  /** Whether the time ran out (the request's failure is then a timeout, whatever error it surfaced as). */
  readonly expired: () => boolean;
  readonly clear: () => void;
}

export function requestDeadline(ms: number): RequestDeadline {
  const controller = new AbortController();
  const timer = setTimeout(() => {
    controller.abort();
  }, ms);
  return {
    signal: controller.signal,
    expired: () => controller.signal.aborted,
    clear: () => {
      clearTimeout(timer);
    },
  };
}
