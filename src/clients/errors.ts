/**
 * Every client classifies its failures: retryable ones (a locked node, a dropped connection, a 503) are retried by
 * Temporal; the others (bad input, a missing object, refused credentials) fail the step at once with a clear message.
 * Messages name the object and carry the peer's own words, never credentials.
 */
export class PeerError extends Error {
  override name = 'PeerError';
  /** The external system: ironic, kubernetes, helm, ssh, bpa. */
  readonly peer: string;
  readonly retryable: boolean;
  /** A stable machine-readable reason, e.g. NodeLocked, NotFound, AuthFailed. */
  readonly reason: string;

  constructor(peer: string, message: string, opts: { retryable: boolean; reason: string; cause?: unknown }) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.peer = peer;
    this.retryable = opts.retryable;
    this.reason = opts.reason;
  }
}
