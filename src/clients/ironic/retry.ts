/**
 * Retrying classified failures outside Temporal (scripts, tests, the lab). Inside workflows Temporal's retry policy
 * does this job; activities should let retryable PeerErrors escape rather than loop here.
 */
import { PeerError } from '../errors.ts';

export interface RetryOptions {
  attempts?: number;
  initialDelayMs?: number;
  maxDelayMs?: number;
  onRetry?: (err: PeerError, attempt: number, delayMs: number) => void;
}

export async function withRetry<T>(fn: () => Promise<T>, opts: RetryOptions = {}): Promise<T> {
  const attempts = opts.attempts ?? 5;
  let delay = opts.initialDelayMs ?? 500;
  for (let attempt = 1; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (!(err instanceof PeerError && err.retryable) || attempt >= attempts) throw err;
      opts.onRetry?.(err, attempt, delay);
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, opts.maxDelayMs ?? 10_000);
    }
  }
}
