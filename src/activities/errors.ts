/**
 * The one translation from what clients and the store throw to what Temporal's retry policy reads: an
 * ApplicationFailure whose type is the stable reason and whose nonRetryable flag is the client's own verdict, so a
 * locked node is retried and a refused password fails the step at once. Failure messages land in workflow history and
 * the Web UI: anything that could carry a credential is scrubbed here, even though the clients scrub their own.
 */
import { ApplicationFailure, TemporalFailure } from '@temporalio/common';
import { ZodError } from 'zod';
import { PeerError } from '../clients/errors.ts';
import { StoreError } from '../store/errors.ts';

/** Store refusals that another attempt cannot change; a Conflict (someone wrote in between) passes on a re-read. */
const retryableStoreCodes: ReadonlySet<StoreError['code']> = new Set(['Conflict']);

export interface FailureOptions {
  /** Values that must not appear in the message (e.g. a password revealed for this attempt). */
  secrets?: Iterable<string>;
}

function scrub(text: string, secrets: Iterable<string> | undefined): string {
  let out = text;
  // Longest first, so that a secret containing another is hidden whole.
  for (const s of [...(secrets ?? [])].filter((x) => x.length > 0).sort((a, b) => b.length - a.length)) {
    out = out.split(s).join('***');
  }
  return out;
}

/**
 * Maps anything an activity caught to what it should throw. Temporal's own failures (a cancellation, an
 * ApplicationFailure already decided) pass through; no cause is attached, since a cause's message and stack are
 * serialised into history as well and were never scrubbed.
 */
export function toActivityFailure(err: unknown, opts: FailureOptions = {}): Error {
  if (err instanceof TemporalFailure) return err;
  if (err instanceof PeerError) {
    return ApplicationFailure.create({
      message: scrub(err.message, opts.secrets),
      type: err.reason,
      nonRetryable: !err.retryable,
      details: [{ peer: err.peer }],
    });
  }
  if (err instanceof StoreError) {
    return ApplicationFailure.create({
      message: scrub(err.message, opts.secrets),
      type: err.code,
      nonRetryable: !retryableStoreCodes.has(err.code),
    });
  }
  if (err instanceof ZodError) {
    // Input that fails its schema fails the same way on every attempt.
    return ApplicationFailure.create({
      message: scrub(
        `invalid input: ${err.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
        opts.secrets,
      ),
      type: 'Invalid',
      nonRetryable: true,
    });
  }
  // Unclassified: Temporal's default (retry) stays, with the message scrubbed all the same.
  const e = err instanceof Error ? err : new Error(String(err));
  return ApplicationFailure.create({ message: scrub(e.message, opts.secrets), type: e.name, nonRetryable: false });
}
