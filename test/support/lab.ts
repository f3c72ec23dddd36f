import { labStatus } from '../../deploy/dev/lab/index.ts';

/**
 * The info of a lab peer brought up by the global setup; throws, naming the peer and its own error, when it could
 * not start, so that the tests needing it fail clearly instead of being skipped.
 */
export function labPeer(name: string): object {
  const [status] = labStatus([name]);
  if (!status?.info) throw new Error(`lab peer "${name}" is not available: ${status?.error ?? 'unknown'}`);
  return status.info;
}
