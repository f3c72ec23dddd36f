/**
 * The typed Kubernetes client: server-side apply, reads, status patches, waits, deletes, evictions and Secrets, over
 * one kubeconfig. Every failure is a PeerError('kubernetes') that names the object and carries the server's words.
 */
import { Discovery } from './discovery.ts';
import { isConflict, isNotFound } from './errors.ts';
import { type KubeconfigSource, KubeTransport } from './transport.ts';
import { describeRef, findCondition, type KubeObject, type ObjectRef, refOf } from './types.ts';
import { type WaitOptions, waitForObject } from './watch.ts';

/** The owner of the fields this project sets, as server-side apply records it. */
export const fieldManager = 'icn-orchestrator';

export interface ApplyOptions {
  /** Take over fields another manager owns (default true: this project is the source of truth for what it applies). */
  force?: boolean;
  fieldManager?: string;
  /**
   * Server-side dry run (`dryRun=All`): the API server validates and admits the object as it would store it (schema,
   * unknown fields, admission, defaulting) and returns the result, but stores nothing.
   */
  dryRun?: boolean;
}

export interface ListOptions {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
}

const conflictAttempts = 5;

export class KubernetesClient {
  readonly #transport: KubeTransport;
  readonly #discovery: Discovery;

  constructor(source: KubeconfigSource) {
    this.#transport = new KubeTransport(source);
    this.#discovery = new Discovery(this.#transport);
  }

  /** The API server URL from the kubeconfig. */
  get server(): string {
    return this.#transport.server;
  }

  /** True when the API server answers /readyz: reachable, authenticated and with its storage up. */
  async ready(): Promise<boolean> {
    try {
      await this.#transport.request({ method: 'GET', path: '/readyz', what: 'check readiness', timeoutMs: 5000 });
      return true;
    } catch {
      return false;
    }
  }

  /** The server's /version (gitVersion e.g. v1.34.2). */
  async version(): Promise<{ gitVersion: string; major: string; minor: string }> {
    return this.#transport.request({ method: 'GET', path: '/version', what: 'read the server version' });
  }

  /**
   * Creates or updates the object with server-side apply and returns it as stored. Applying the same object twice
   * changes nothing (same resourceVersion). A 409 (a create racing another) is retried.
   */
  async apply<T extends KubeObject>(object: T, opts: ApplyOptions = {}): Promise<T> {
    const ref = refOf(object);
    const { managedFields: _managedFields, ...metadata } = object.metadata;
    const body = { ...object, metadata };
    const force = opts.force ?? true;
    // Without force a 409 is another manager owning a field: a fact to report, not a race to retry.
    return this.#retryConflicts(force ? conflictAttempts : 1, async () =>
      this.#transport.request<T>({
        method: 'PATCH',
        path: await this.#discovery.path(ref),
        query: {
          fieldManager: opts.fieldManager ?? fieldManager,
          force,
          ...(opts.dryRun === true && { dryRun: 'All' }),
        },
        // JSON is YAML: the apply content type takes either.
        contentType: 'application/apply-patch+yaml',
        body,
        what: `apply ${describeRef(ref)}`,
      }),
    );
  }

  /** The object as stored, status included; a missing object is a non-retryable NotFound PeerError. */
  async get<T extends KubeObject = KubeObject>(ref: ObjectRef): Promise<T> {
    return this.#transport.request<T>({
      method: 'GET',
      path: await this.#discovery.path(ref),
      what: `get ${describeRef(ref)}`,
    });
  }

  /** Like get, but a missing object is undefined. */
  async find<T extends KubeObject = KubeObject>(ref: ObjectRef): Promise<T | undefined> {
    try {
      return await this.get<T>(ref);
    } catch (err) {
      if (isNotFound(err)) return undefined;
      throw err;
    }
  }

  async list<T extends KubeObject = KubeObject>(
    apiVersion: string,
    kind: string,
    opts: ListOptions = {},
  ): Promise<T[]> {
    const where = opts.namespace === undefined ? 'all namespaces' : `namespace ${opts.namespace}`;
    const list = await this.#transport.request<{ items: T[] }>({
      method: 'GET',
      path: await this.#discovery.path({ apiVersion, kind, namespace: opts.namespace }),
      query: { labelSelector: opts.labelSelector, fieldSelector: opts.fieldSelector },
      what: `list ${kind} in ${where}`,
    });
    // Lists leave out each item's type; callers expect whole objects.
    return list.items.map((item) => ({ ...item, apiVersion, kind }));
  }

  /**
   * Merge-patches the status subresource: what a controller (or its test stand-in) reports. Fields set to null are
   * removed.
   */
  async patchStatus<T extends KubeObject = KubeObject>(ref: ObjectRef, status: Record<string, unknown>): Promise<T> {
    return this.#retryConflicts(conflictAttempts, async () =>
      this.#transport.request<T>({
        method: 'PATCH',
        path: await this.#discovery.path(ref, 'status'),
        contentType: 'application/merge-patch+json',
        body: { status },
        what: `patch status of ${describeRef(ref)}`,
      }),
    );
  }

  /**
   * Read-modify-write with optimistic concurrency: `change` receives the current object and returns the new one
   * (or undefined for no change); a 409 because someone else wrote in between is retried on a fresh read.
   */
  async update<T extends KubeObject = KubeObject>(
    ref: ObjectRef,
    change: (current: T) => T | undefined | Promise<T | undefined>,
    opts: { known?: T } = {},
  ): Promise<T> {
    let known = opts.known;
    return this.#retryConflicts(conflictAttempts, async () => {
      // A copy the caller read a moment ago saves the read; if it was stale, the write is refused (409) and the
      // retry reads.
      const current = known ?? (await this.get<T>(ref));
      known = undefined;
      const next = await change(structuredClone(current));
      if (next === undefined) return current;
      return this.#transport.request<T>({
        method: 'PUT',
        path: await this.#discovery.path(ref),
        body: { ...next, metadata: { ...next.metadata, resourceVersion: current.metadata.resourceVersion } },
        what: `update ${describeRef(ref)}`,
      });
    });
  }

  /**
   * Deletes the object (background propagation) and, unless `wait` is 0, waits until it is gone (finalizers done).
   * An object already gone is success.
   */
  async delete(ref: ObjectRef, opts: { waitMs?: number } = {}): Promise<void> {
    try {
      await this.#transport.request({
        method: 'DELETE',
        path: await this.#discovery.path(ref),
        body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: 'Background' },
        what: `delete ${describeRef(ref)}`,
      });
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
    const waitMs = opts.waitMs ?? 60_000;
    if (waitMs > 0) await this.waitForGone(ref, { timeoutMs: waitMs });
  }

  /**
   * Evicts a pod through its Eviction subresource (policy/v1): a delete that PodDisruptionBudgets may refuse. A refusal
   * is a retryable PeerError with reason TooManyRequests (429) carrying the server's words; a pod already gone is
   * success.
   */
  async evict(namespace: string, name: string): Promise<void> {
    const ref: ObjectRef = { apiVersion: 'v1', kind: 'Pod', namespace, name };
    try {
      await this.#transport.request({
        method: 'POST',
        path: await this.#discovery.path(ref, 'eviction'),
        body: { apiVersion: 'policy/v1', kind: 'Eviction', metadata: { name, namespace } },
        what: `evict ${describeRef(ref)}`,
      });
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
  }

  /** Resolves with the first observed state that satisfies `predicate` (undefined = absent). */
  async waitFor<T extends KubeObject = KubeObject>(
    ref: ObjectRef,
    predicate: (observed: T | undefined) => boolean,
    opts: WaitOptions,
  ): Promise<T | undefined> {
    return (await waitForObject(
      this.#transport,
      this.#discovery,
      ref,
      predicate as (o: KubeObject | undefined) => boolean,
      opts,
    )) as T | undefined;
  }

  /** Waits until status.conditions has `type` with `status` (default True), e.g. Ready, Established. */
  async waitForCondition<T extends KubeObject = KubeObject>(
    ref: ObjectRef,
    type: string,
    opts: WaitOptions & { status?: 'True' | 'False' | 'Unknown' },
  ): Promise<T> {
    const status = opts.status ?? 'True';
    const found = await this.waitFor<T>(ref, (o) => findCondition(o, type)?.status === status, {
      description: `condition ${type}=${status}`,
      ...opts,
    });
    return found as T;
  }

  async waitForGone(ref: ObjectRef, opts: WaitOptions): Promise<void> {
    await this.waitFor(ref, (o) => o === undefined, { description: 'gone', ...opts });
  }

  /** A Secret's values, base64-decoded. The values appear in no message or log. */
  async readSecret(namespace: string, name: string): Promise<Record<string, string>> {
    const secret = await this.get<KubeObject & { data?: Record<string, string> }>({
      apiVersion: 'v1',
      kind: 'Secret',
      namespace,
      name,
    });
    return Object.fromEntries(
      Object.entries(secret.data ?? {}).map(([key, value]) => [key, Buffer.from(value, 'base64').toString('utf8')]),
    );
  }

  /** Closes every open connection (watches included); later calls open new ones. */
  dropConnections(): void {
    this.#transport.dropConnections();
  }

  close(): void {
    this.#transport.dropConnections();
  }

  async #retryConflicts<T>(attempts: number, attempt: () => Promise<T>): Promise<T> {
    for (let n = 1; ; n++) {
      try {
        return await attempt();
      } catch (err) {
        if (!isConflict(err) || n >= attempts) throw err;
        await new Promise((resolve) => setTimeout(resolve, 20 * n + Math.random() * 30));
      }
    }
  }
}
