/**
 * Waits for one object to reach a state with list-then-watch, the way controllers do: list (by name) to get the
 * current state and a resourceVersion, watch from there, and list again whenever a watch ends, drops or expires
 * (410), so that no change falls between two watches. A deadline bounds the whole wait.
 */
import { PeerError } from '../errors.ts';
import type { Discovery } from './discovery.ts';
import type { KubeTransport } from './transport.ts';
import { conditionsOf, describeRef, type KubeObject, type ObjectRef } from './types.ts';

export interface WaitOptions {
  timeoutMs: number;
  /** Says what was awaited in the timeout error, e.g. `condition Ready=True`. */
  description?: string;
  signal?: AbortSignal;
  /** Longest single watch request; the server ends it after this and the wait lists again. */
  watchTimeoutSeconds?: number;
  /** Called with every observed state (absent = undefined): a heartbeat hook for long activities. */
  onProgress?: (observed: KubeObject | undefined, source: 'list' | 'watch') => void;
}

interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: KubeObject | { kind: 'Status'; code?: number; message?: string };
}

interface ListBody {
  metadata: { resourceVersion: string };
  items: KubeObject[];
}

export async function waitForObject(
  transport: KubeTransport,
  discovery: Discovery,
  ref: ObjectRef,
  predicate: (observed: KubeObject | undefined) => boolean,
  opts: WaitOptions,
): Promise<KubeObject | undefined> {
  const deadline = Date.now() + opts.timeoutMs;
  const collection = await discovery.path({ apiVersion: ref.apiVersion, kind: ref.kind, namespace: ref.namespace });
  const fieldSelector = `metadata.name=${ref.name}`;
  const what = `wait for ${describeRef(ref)}${opts.description === undefined ? '' : ` (${opts.description})`}`;
  let last: KubeObject | undefined;
  let lastError: PeerError | undefined;

  while (Date.now() < deadline) {
    if (opts.signal?.aborted === true)
      throw new PeerError('kubernetes', `${what}: cancelled`, { retryable: true, reason: 'Cancelled' });
    let list: ListBody;
    try {
      list = await transport.request<ListBody>({
        method: 'GET',
        path: collection,
        query: { fieldSelector },
        what,
        timeoutMs: 30_000,
      });
    } catch (err) {
      if (!(err instanceof PeerError) || !err.retryable) throw err;
      lastError = err;
      await sleep(Math.min(1000, Math.max(0, deadline - Date.now())));
      continue;
    }
    last = list.items[0];
    opts.onProgress?.(last, 'list');
    if (predicate(last)) return last;

    const stop = new AbortController();
    const onOuterAbort = (): void => {
      stop.abort();
    };
    opts.signal?.addEventListener('abort', onOuterAbort, { once: true });
    const timer = setTimeout(onOuterAbort, Math.max(0, deadline - Date.now()));
    const outcome = { reached: false };
    let resourceVersion = list.metadata.resourceVersion;
    try {
      const remainingSeconds = Math.max(1, Math.ceil((deadline - Date.now()) / 1000));
      await transport.stream(
        {
          method: 'GET',
          path: collection,
          query: {
            watch: 1,
            fieldSelector,
            resourceVersion,
            allowWatchBookmarks: true,
            timeoutSeconds: Math.min(remainingSeconds, opts.watchTimeoutSeconds ?? 300),
          },
          what,
          signal: stop.signal,
        },
        (value) => {
          const event = value as WatchEvent;
          if (event.type === 'ERROR') {
            // Usually 410 Expired: the resourceVersion is too old; the next list starts afresh.
            stop.abort();
            return;
          }
          const object = event.object as KubeObject;
          if (object.metadata.resourceVersion !== undefined) resourceVersion = object.metadata.resourceVersion;
          if (event.type === 'BOOKMARK') return;
          last = event.type === 'DELETED' ? undefined : object;
          opts.onProgress?.(last, 'watch');
          if (predicate(last)) {
            outcome.reached = true;
            stop.abort();
          }
        },
      );
    } catch (err) {
      // A dropped watch is what the re-list is for; anything the server refused is final.
      if (!(err instanceof PeerError) || !err.retryable) throw err;
      lastError = err;
    } finally {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onOuterAbort);
    }
    if (outcome.reached) return last;
  }
  const seen = last === undefined ? 'absent' : summarize(last);
  throw new PeerError(
    'kubernetes',
    `${what}: not reached within ${Math.round(opts.timeoutMs / 1000)} s; last seen: ${seen}` +
      (lastError === undefined ? '' : `; last error: ${lastError.message}`),
    { retryable: true, reason: 'Timeout' },
  );
}

/** The conditions (or the whole status when it has none), short enough for an error message. */
function summarize(object: KubeObject): string {
  const conditions = conditionsOf(object);
  if (conditions.length > 0) {
    return conditions.map((c) => `${c.type}=${c.status}${c.reason === undefined ? '' : ` (${c.reason})`}`).join(', ');
  }
  return JSON.stringify(object.status ?? {}).slice(0, 300);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
