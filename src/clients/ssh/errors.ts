/**
 * Classifies ssh2's failures into PeerError('ssh', ...): refused credentials and unknown host keys fail at once, a
 * host that cannot be reached or a connection that drops is retried. Messages name user@host:port and the operation,
 * never a key.
 */
import { PeerError } from '../errors.ts';

export type SshReason =
  | 'AuthFailed'
  | 'HostKeyMismatch'
  | 'Unreachable'
  | 'ConnectionLost'
  | 'ChannelOpenFailed'
  | 'Timeout'
  | 'CommandFailed'
  | 'ChecksumMismatch'
  | 'LocalFileError'
  | 'RemoteFileError'
  | 'Closed';

const retryableReasons = new Set<SshReason>(['Unreachable', 'ConnectionLost', 'ChannelOpenFailed', 'Timeout']);

export function sshError(where: string, message: string, reason: SshReason, cause?: unknown): PeerError {
  return new PeerError('ssh', `ssh ${where}: ${message}`, { retryable: retryableReasons.has(reason), reason, cause });
}

/** Commands can be long scripts: messages carry their start only. */
export function describeCommand(command: string): string {
  const oneLine = command.replace(/\s+/g, ' ').trim();
  return oneLine.length > 120 ? `${oneLine.slice(0, 117)}...` : oneLine;
}

interface Ssh2Error {
  message: string;
  /** A socket error's errno name, or an SFTP status code (a number). */
  code?: string | number;
  level?: string;
}

// Not `instanceof Error`: errors made by Node's own modules come from another realm under Jest's vm contexts.
function asSsh2Error(err: unknown): Ssh2Error {
  if (typeof err === 'object' && err !== null && typeof (err as { message?: unknown }).message === 'string') {
    return err as Ssh2Error;
  }
  return { message: String(err) };
}

/**
 * `phase` is where it happened: before the connection was ready (`connect`), or on an established one (`session`),
 * where a socket error means the connection was lost rather than that the host cannot be reached.
 */
export function classifySshError(err: unknown, where: string, phase: 'connect' | 'session'): PeerError {
  if (err instanceof PeerError) return err;
  const e = asSsh2Error(err);
  if (typeof e.code === 'number')
    return sshError(where, `the host's sftp server refused: ${e.message}`, 'RemoteFileError', err);
  const detail = typeof e.code === 'string' && !e.message.includes(e.code) ? `${e.message} (${e.code})` : e.message;
  if (e.message.startsWith('Host denied')) {
    return sshError(where, `host key not accepted (not in known_hosts or changed): ${detail}`, 'HostKeyMismatch', err);
  }
  if (e.level === 'client-authentication') {
    return sshError(where, `authentication failed: ${detail}`, 'AuthFailed', err);
  }
  if (/Cannot parse privateKey|Encrypted private .*key detected/i.test(e.message)) {
    return sshError(where, `the private key cannot be used: ${detail}`, 'AuthFailed', err);
  }
  if (e.message.startsWith('(SSH) Channel open failure')) {
    return sshError(where, `the host refused a new session: ${detail}`, 'ChannelOpenFailed', err);
  }
  if (phase === 'connect') {
    if (
      ['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT'].includes(String(e.code))
    ) {
      return sshError(where, `cannot connect: ${detail}`, 'Unreachable', err);
    }
    if (e.level === 'client-timeout') return sshError(where, `cannot connect: ${detail}`, 'Unreachable', err);
    return sshError(where, `connection lost while connecting: ${detail}`, 'ConnectionLost', err);
  }
  return sshError(where, `connection lost: ${detail}`, 'ConnectionLost', err);
}
