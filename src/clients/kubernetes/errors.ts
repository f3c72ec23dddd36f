/**
 * Classifies the API server's answers: what a later attempt may fix (conflicts, throttling, an overloaded or
 * restarting server, a dropped connection) is retryable; what only a change of input fixes (invalid object, refused
 * access, missing object) is not.
 */
import { PeerError } from '../errors.ts';

/** The metav1.Status body the API server sends with every error. */
export interface StatusBody {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
}

export function isStatusBody(value: unknown): value is StatusBody {
  return typeof value === 'object' && value !== null && (value as { kind?: unknown }).kind === 'Status';
}

const reasonByCode: Record<number, string> = {
  400: 'BadRequest',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'NotFound',
  405: 'MethodNotAllowed',
  409: 'Conflict',
  410: 'Expired',
  415: 'UnsupportedMediaType',
  422: 'Invalid',
  429: 'TooManyRequests',
  500: 'InternalError',
  503: 'ServiceUnavailable',
  504: 'Timeout',
};

export function isRetryableStatus(code: number): boolean {
  return code === 409 || code === 429 || code >= 500;
}

/** `what` names the action and object, e.g. `apply Cluster site-a/edge-1`. */
export function httpError(what: string, code: number, body: unknown): PeerError {
  const status = isStatusBody(body) ? body : undefined;
  const reason =
    status?.reason !== undefined && status.reason !== '' ? status.reason : (reasonByCode[code] ?? `Http${code}`);
  const said = status?.message ?? (typeof body === 'string' && body !== '' ? body.slice(0, 500) : `HTTP ${code}`);
  return new PeerError('kubernetes', `${what}: ${said} (${code} ${reason})`, {
    retryable: isRetryableStatus(code),
    reason,
  });
}

export function networkError(what: string, err: unknown): PeerError {
  const detail = err instanceof Error ? err.message : String(err);
  return new PeerError('kubernetes', `${what}: the API server could not be reached: ${detail}`, {
    retryable: true,
    reason: 'Unreachable',
    cause: err,
  });
}

export function isNotFound(err: unknown): boolean {
  return err instanceof PeerError && err.peer === 'kubernetes' && err.reason === 'NotFound';
}

export function isConflict(err: unknown): boolean {
  return (
    err instanceof PeerError &&
    err.peer === 'kubernetes' &&
    (err.reason === 'Conflict' || err.reason === 'AlreadyExists')
  );
}
