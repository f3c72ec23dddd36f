/**
 * Ironic's failures, classified the way metal3's Ironic provisioner treats them: a node locked by the conductor, an
 * overloaded or restarting API and a dropped connection pass with time (retryable); bad input, a missing node, an
 * invalid transition or a MAC already taken do not (the step fails at once with Ironic's own words).
 */
import { PeerError } from '../errors.ts';

export type IronicErrorReason =
  | 'NodeLocked'
  | 'LockLost'
  | 'Busy'
  | 'Conflict'
  | 'BadRequest'
  | 'NotFound'
  | 'AuthFailed'
  | 'UnsupportedVersion'
  | 'Unavailable'
  | 'ServerError'
  | 'Unreachable'
  | 'Timeout'
  | 'ProvisionFailed'
  | 'Invalid';

export interface Classification {
  retryable: boolean;
  reason: IronicErrorReason;
}

/**
 * Ironic signals every conflict with 409 and no machine-readable code, so the faultstring tells a lock (NodeLocked,
 * also raised while the conductor is busy with the node) from a permanent conflict (DuplicateName, MACAlreadyExists,
 * deleting an active node).
 */
export function classifyStatus(status: number, fault: string): Classification {
  if (status === 409) {
    if (/is locked by host/i.test(fault)) return { retryable: true, reason: 'NodeLocked' };
    if (/in progress|please retry/i.test(fault)) return { retryable: true, reason: 'Busy' };
    return { retryable: false, reason: 'Conflict' };
  }
  // Ironic on SQLite retries a lock release that hit "database is locked"; when the first release had gone through,
  // the retry finds no lock and the call fails with 400 NodeNotLocked (seen on DELETE under CI load). The operation's
  // outcome is unknown, so asking again is the answer: every caller's operation is idempotent.
  if (status === 400 && /not to be locked on release/i.test(fault)) return { retryable: true, reason: 'LockLost' };
  if (status === 503) return { retryable: true, reason: 'Unavailable' };
  // A 500 from Ironic on SQLite is often "database is locked" under parallel load: worth another try.
  if (status >= 500) return { retryable: true, reason: 'ServerError' };
  if (status === 404) return { retryable: false, reason: 'NotFound' };
  if (status === 401 || status === 403) return { retryable: false, reason: 'AuthFailed' };
  if (status === 406) return { retryable: false, reason: 'UnsupportedVersion' };
  return { retryable: false, reason: 'BadRequest' };
}

/**
 * Ironic wraps its error twice: {"error_message": "<JSON string with faultstring>"}; some paths send the inner
 * object directly or plain text. Returns the human part.
 */
export function ironicFault(body: string): string {
  const fromObject = (v: unknown): string | undefined => {
    if (typeof v === 'object' && v !== null && 'faultstring' in v && typeof v.faultstring === 'string') {
      return v.faultstring;
    }
    return undefined;
  };
  try {
    const outer = JSON.parse(body) as unknown;
    if (typeof outer === 'object' && outer !== null && 'error_message' in outer) {
      const inner = outer.error_message;
      if (typeof inner === 'string') {
        try {
          return fromObject(JSON.parse(inner)) ?? inner;
        } catch {
          return inner;
        }
      }
      return fromObject(inner) ?? body.trim();
    }
    return fromObject(outer) ?? body.trim();
  } catch {
    return body.trim();
  }
}

/** Keys whose values are credentials: BMC passwords, keys, tokens. */
export const secretKey = /password|secret|token|key|credential/i;

const mask = '***';

/** Replaces every known secret value in a text; longest first so that one secret containing another is fully hidden. */
export function scrubText(text: string, secrets: Iterable<string>): string {
  let out = text;
  for (const s of [...secrets].filter((x) => x.length > 0).sort((a, b) => b.length - a.length)) {
    out = out.split(s).join(mask);
  }
  return out;
}

/** A copy of a driver_info-like record with credential values masked. */
export function scrubRecord(record: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, secretKey.test(k) ? mask : v]));
}

export function ironicError(
  message: string,
  classification: Classification,
  secrets: Iterable<string>,
  cause?: unknown,
): PeerError {
  return new PeerError('ironic', scrubText(message, secrets), { ...classification, cause });
}
