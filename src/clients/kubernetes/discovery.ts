/**
 * Maps an object's apiVersion and kind to its REST path through the server's discovery documents, so that CRDs
 * (Cluster-API, metal3) need no hand-written table. A kind missing from the cache is looked up again once: its CRD
 * may have been installed since.
 */
import { PeerError } from '../errors.ts';
import type { KubeTransport } from './transport.ts';
import type { ObjectRef } from './types.ts';

interface ApiResource {
  name: string;
  kind: string;
  namespaced: boolean;
}

export interface ResourceInfo {
  /** `/api/v1` or `/apis/<group>/<version>`. */
  base: string;
  plural: string;
  namespaced: boolean;
}

/**
 * The core group's built-in kinds, whose paths have not changed since Kubernetes 1.0: resolved without asking, a
 * discovery request fewer per cluster client (one per site at a fleet rollout's start).
 */
const coreV1 = new Map<string, ApiResource>(
  (
    [
      ['ConfigMap', 'configmaps', true],
      ['Endpoints', 'endpoints', true],
      ['Event', 'events', true],
      ['LimitRange', 'limitranges', true],
      ['Namespace', 'namespaces', false],
      ['Node', 'nodes', false],
      ['PersistentVolume', 'persistentvolumes', false],
      ['PersistentVolumeClaim', 'persistentvolumeclaims', true],
      ['Pod', 'pods', true],
      ['ResourceQuota', 'resourcequotas', true],
      ['Secret', 'secrets', true],
      ['Service', 'services', true],
      ['ServiceAccount', 'serviceaccounts', true],
    ] as const
  ).map(([kind, name, namespaced]) => [kind, { kind, name, namespaced }]),
);

export class Discovery {
  readonly #transport: KubeTransport;
  readonly #byGroupVersion = new Map<string, Promise<Map<string, ApiResource>>>();

  constructor(transport: KubeTransport) {
    this.#transport = transport;
  }

  #load(apiVersion: string): Promise<Map<string, ApiResource>> {
    let loaded = this.#byGroupVersion.get(apiVersion);
    if (loaded === undefined) {
      const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
      loaded = this.#transport
        .request<{ resources: ApiResource[] }>({ method: 'GET', path: base, what: `discover ${apiVersion}` })
        .then((list) => new Map(list.resources.filter((r) => !r.name.includes('/')).map((r) => [r.kind, r])));
      // A failed lookup must not stick: the next call asks again.
      loaded.catch(() => this.#byGroupVersion.delete(apiVersion));
      this.#byGroupVersion.set(apiVersion, loaded);
    }
    return loaded;
  }

  async resource(apiVersion: string, kind: string): Promise<ResourceInfo> {
    const base = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    let found = apiVersion === 'v1' ? coreV1.get(kind) : undefined;
    if (found !== undefined) return { base, plural: found.name, namespaced: found.namespaced };
    try {
      found = (await this.#load(apiVersion)).get(kind);
      if (found === undefined) {
        this.#byGroupVersion.delete(apiVersion);
        found = (await this.#load(apiVersion)).get(kind);
      }
    } catch (err) {
      if (!(err instanceof PeerError) || err.reason !== 'NotFound') throw err;
    }
    if (found === undefined) {
      throw new PeerError(
        'kubernetes',
        `the API server does not serve kind ${kind} in ${apiVersion} (is its CRD installed?)`,
        {
          retryable: false,
          reason: 'UnknownKind',
        },
      );
    }
    return { base, plural: found.name, namespaced: found.namespaced };
  }

  /** The object's path, or its collection's when `ref.name` is empty; `subresource` e.g. `status`. */
  async path(ref: Omit<ObjectRef, 'name'> & { name?: string }, subresource?: string): Promise<string> {
    const info = await this.resource(ref.apiVersion, ref.kind);
    let path = info.base;
    if (info.namespaced) {
      if (ref.namespace === undefined || ref.namespace === '') {
        if (ref.name !== undefined && ref.name !== '') {
          throw new PeerError('kubernetes', `${ref.kind} ${ref.name} is namespaced but no namespace was given`, {
            retryable: false,
            reason: 'BadRequest',
          });
        }
      } else {
        path += `/namespaces/${encodeURIComponent(ref.namespace)}`;
      }
    }
    path += `/${info.plural}`;
    if (ref.name !== undefined && ref.name !== '') path += `/${encodeURIComponent(ref.name)}`;
    if (subresource !== undefined) path += `/${subresource}`;
    return path;
  }
}
