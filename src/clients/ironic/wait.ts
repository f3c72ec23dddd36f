/**
 * Waiting for a node to settle, by polling (Ironic has no watch). Fails fast with the node's last_error when it
 * lands in a failed state instead of burning the whole deadline; a read that fails transiently is polled again.
 * onPoll lets an activity heartbeat with the node's progress.
 */
import { PeerError } from '../errors.ts';
import { type IronicHttp, nodeSubject } from './http.ts';
import { getNode } from './read.ts';
import type { IronicNode, StableProvisionState } from './types.ts';

export interface WaitOptions {
  timeoutMs: number;
  intervalMs?: number;
  onPoll?: (node: IronicNode) => void | Promise<void>;
  signal?: AbortSignal;
}

/** "deploy failed", "clean failed", "inspect failed", ... and "error" (a failed tear-down). */
export function isFailedState(state: string): boolean {
  return state.endsWith(' failed') || state === 'error';
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener(
      'abort',
      () => {
        clearTimeout(timer);
        reject(signal.reason as Error);
      },
      { once: true },
    );
  });
}

async function poll(
  http: IronicHttp,
  ident: string,
  waitingFor: string,
  opts: WaitOptions,
  settled: (node: IronicNode) => 'done' | 'failed' | 'pending',
  describe: (node: IronicNode) => string,
): Promise<IronicNode> {
  const deadline = Date.now() + opts.timeoutMs;
  const interval = opts.intervalMs ?? 1000;
  let last: IronicNode | undefined;
  let lastError: PeerError | undefined;
  for (;;) {
    opts.signal?.throwIfAborted();
    try {
      last = await getNode(http, ident);
      lastError = undefined;
    } catch (err) {
      if (!(err instanceof PeerError && err.retryable)) throw err;
      lastError = err;
    }
    if (last && lastError === undefined) {
      await opts.onPoll?.(last);
      const verdict = settled(last);
      if (verdict === 'done') return last;
      if (verdict === 'failed') {
        throw http.error(
          `Ironic ${nodeSubject(ident)} is "${describe(last)}" while waiting for "${waitingFor}": ${last.last_error ?? 'no last_error'}`,
          { retryable: false, reason: 'ProvisionFailed' },
        );
      }
    }
    if (Date.now() + interval > deadline) {
      const now = last ? `still "${describe(last)}"` : 'never read';
      const why = lastError ? ` (last read: ${lastError.message})` : '';
      throw http.error(
        `Ironic ${nodeSubject(ident)} ${now} after ${Math.round(opts.timeoutMs / 1000)} s waiting for "${waitingFor}"${why}`,
        { retryable: true, reason: 'Timeout' },
      );
    }
    await sleep(interval, opts.signal);
  }
}

export function waitForProvisionState(
  http: IronicHttp,
  ident: string,
  target: StableProvisionState,
  opts: WaitOptions,
): Promise<IronicNode> {
  return poll(
    http,
    ident,
    target,
    opts,
    (n) => {
      if (n.provision_state === target && n.target_provision_state === null) return 'done';
      if (isFailedState(n.provision_state)) return 'failed';
      // Settled elsewhere with an error, e.g. a failed "manage" drops back to "enroll".
      if (n.target_provision_state === null && n.last_error !== null) return 'failed';
      return 'pending';
    },
    (n) =>
      n.target_provision_state === null
        ? n.provision_state
        : `${n.provision_state}" (target "${n.target_provision_state})`,
  );
}

export function waitForPowerState(
  http: IronicHttp,
  ident: string,
  target: 'power on' | 'power off',
  opts: WaitOptions,
): Promise<IronicNode> {
  return poll(
    http,
    ident,
    target,
    opts,
    (n) => {
      if (n.power_state === target && n.target_power_state === null) return 'done';
      if (n.target_power_state === null && n.last_error !== null) return 'failed';
      return 'pending';
    },
    (n) => n.power_state ?? 'unknown power state',
  );
}
