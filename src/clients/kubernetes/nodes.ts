/**
 * Node operations on a site's cluster: find the Node of a host, cordon, drain (through evictions, so that
 * PodDisruptionBudgets hold), wait for Ready and delete. Each is idempotent, so an activity retried after a crash or a
 * timeout picks up where the last attempt stopped.
 */
import { PeerError } from '../errors.ts';
import type { KubernetesClient } from './client.ts';
import type { KubeObject, ObjectRef } from './types.ts';

export interface NodeObject extends KubeObject {
  spec?: { providerID?: string; unschedulable?: boolean; [field: string]: unknown };
}

interface PodObject extends KubeObject {
  spec?: { nodeName?: string; [field: string]: unknown };
  status?: { phase?: string; [field: string]: unknown };
}

const nodeRef = (name: string): ObjectRef => ({ apiVersion: 'v1', kind: 'Node', name });

/** The kubelet's mirror of a static pod: the API server cannot evict it, only the kubelet's manifest removes it. */
const mirrorAnnotation = 'kubernetes.io/config.mirror';

/**
 * The Node of a site's host, or undefined when it has none (yet). cluster-api-provider-metal3 sets providerID to
 * `metal3://<namespace>/<BareMetalHost>/<Metal3Machine>`, and a site's BareMetalHosts live in namespace `site-<site>`
 * named after the host (siteNamespace in activities/cluster.ts), which identifies the host whatever the node's name.
 * kubeadm sites have no providerID: there the node is named after the host's hostname.
 */
export async function findHostNode(
  kube: KubernetesClient,
  target: { site: string; host: string },
): Promise<NodeObject | undefined> {
  const nodes = await kube.list<NodeObject>('v1', 'Node');
  const prefix = `metal3://site-${target.site}/${target.host}/`;
  return (
    nodes.find((n) => n.spec?.providerID?.startsWith(prefix) === true) ??
    nodes.find((n) => n.metadata.name === target.host) ??
    nodes.find((n) => n.metadata.labels?.['kubernetes.io/hostname'] === target.host)
  );
}

/** Marks the node unschedulable; a node already cordoned is left untouched. A missing node is a NotFound PeerError. */
/** The annotation naming who cordoned a node, so that only they uncordon it (an operator's own cordon stays). */
export const cordonedByAnnotation = 'icn.akraino.org/cordoned-by';

/**
 * Cordons the node. With `by`, a node this call cordons is marked as cordoned by it; a node already cordoned (by an
 * operator, say) is left unmarked. `known`: the node as just read (findHostNode's), which saves reading it again.
 */
export async function cordonNode(
  kube: KubernetesClient,
  name: string,
  opts: { by?: string; known?: NodeObject } = {},
): Promise<NodeObject> {
  return kube.update<NodeObject>(
    nodeRef(name),
    (node) => {
      if (node.spec?.unschedulable === true) return undefined;
      const annotations = {
        ...node.metadata.annotations,
        ...(opts.by !== undefined && { [cordonedByAnnotation]: opts.by }),
      };
      return { ...node, metadata: { ...node.metadata, annotations }, spec: { ...node.spec, unschedulable: true } };
    },
    opts.known === undefined ? {} : { known: opts.known },
  );
}

/**
 * Uncordons the node; with `by`, only when `by` cordoned it (its mark goes too). `known`: the node as just read
 * (waitNodeReady's), which saves reading it again.
 */
export async function uncordonNode(
  kube: KubernetesClient,
  name: string,
  opts: { by?: string; known?: NodeObject } = {},
): Promise<NodeObject> {
  return kube.update<NodeObject>(
    nodeRef(name),
    (node) => {
      const mark = node.metadata.annotations?.[cordonedByAnnotation];
      if (opts.by !== undefined && mark !== opts.by) return undefined;
      if (node.spec?.unschedulable !== true && mark === undefined) return undefined;
      const { [cordonedByAnnotation]: _mark, ...annotations } = node.metadata.annotations ?? {};
      const { unschedulable: _old, ...spec } = node.spec ?? {};
      // The API server leaves a false flag out of what it stores; writing it that way keeps reads and writes alike.
      return { ...node, metadata: { ...node.metadata, annotations }, spec };
    },
    opts.known === undefined ? {} : { known: opts.known },
  );
}

export interface DrainProgress {
  /** Pods the drain still waits for, as namespace/name. */
  remaining: string[];
  /** Pods whose eviction a PodDisruptionBudget refuses for now, with the API server's words. */
  blocked: { pod: string; message: string }[];
}

export interface DrainOptions {
  /** Bounds the whole drain; past it the drain fails with a retryable PeerError naming the pods left. */
  timeoutMs: number;
  /** Called after every pass over the node's pods: a heartbeat hook for the activity that drains. */
  onProgress?: (progress: DrainProgress) => void;
  signal?: AbortSignal;
  /** Pause between passes (default 1000 ms): evictions refused are asked again, and deletions are checked. */
  intervalMs?: number;
  /** The caller has just cordoned the node itself: the drain does not read it again to cordon it. */
  cordoned?: boolean;
}

/**
 * Cordons the node, evicts every pod on it except DaemonSet pods (their controller would put them straight back, and
 * they tolerate the cordon) and mirror pods (static pods: only their manifest on the host removes them), and waits
 * until the evicted pods are gone. Evictions a PodDisruptionBudget refuses are asked again every pass until the
 * timeout, as kubectl drain does. Draining again finds nothing left to evict and returns at once.
 *
 * Pods are gone when their kubelet has stopped them and deleted them: in the lab kwok plays that kubelet and removes a
 * terminating pod within milliseconds, so no forced (grace 0) delete is needed there. On a real node whose kubelet is
 * down, a terminating pod stays until the node is deleted; the drain then times out naming it, which is the truth.
 */
export async function drainNode(kube: KubernetesClient, name: string, opts: DrainOptions): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  const intervalMs = opts.intervalMs ?? 1000;
  if (opts.cordoned !== true) await cordonNode(kube, name);
  for (;;) {
    if (opts.signal?.aborted === true) {
      throw new PeerError('kubernetes', `drain Node ${name}: cancelled`, { retryable: true, reason: 'Cancelled' });
    }
    const pods = await kube.list<PodObject>('v1', 'Pod', { fieldSelector: `spec.nodeName=${name}` });
    const evictable = pods.filter(
      (p) => !isDaemonSetPod(p) && p.metadata.annotations?.[mirrorAnnotation] === undefined,
    );
    const progress: DrainProgress = { remaining: evictable.map(podName), blocked: [] };
    if (evictable.length === 0) {
      opts.onProgress?.(progress);
      return;
    }
    for (const pod of evictable) {
      // A terminating pod only needs its kubelet to finish; evicting it again would change nothing.
      if (pod.metadata.deletionTimestamp !== undefined) continue;
      try {
        await kube.evict(pod.metadata.namespace ?? 'default', pod.metadata.name);
      } catch (err) {
        // 429 is a PodDisruptionBudget refusing for now. Anything else fails this attempt: draining again resumes.
        if (!(err instanceof PeerError) || err.reason !== 'TooManyRequests') throw err;
        progress.blocked.push({ pod: podName(pod), message: err.message });
      }
    }
    opts.onProgress?.(progress);
    const left = deadline - Date.now();
    if (left <= 0) throw drainTimeout(name, opts.timeoutMs, progress);
    await sleep(Math.min(intervalMs, left), opts.signal);
  }
}

function isDaemonSetPod(pod: PodObject): boolean {
  return (pod.metadata.ownerReferences ?? []).some((o) => o.kind === 'DaemonSet' && o.controller === true);
}

const podName = (pod: PodObject): string => `${pod.metadata.namespace ?? ''}/${pod.metadata.name}`;

function drainTimeout(name: string, timeoutMs: number, progress: DrainProgress): PeerError {
  const blocked = new Map(progress.blocked.map((b) => [b.pod, b.message]));
  const pods = progress.remaining
    .slice(0, 10)
    .map((p) => (blocked.has(p) ? `${p} (eviction refused: ${blocked.get(p) ?? ''})` : `${p} (terminating)`));
  const more = progress.remaining.length > 10 ? ` and ${progress.remaining.length - 10} more` : '';
  return new PeerError(
    'kubernetes',
    `drain Node ${name}: ${progress.remaining.length} pod(s) still on it after ${Math.round(timeoutMs / 1000)} s: ` +
      `${pods.join('; ')}${more}`,
    // A budget opens up as other pods of its workload become ready elsewhere: a later attempt may well pass.
    { retryable: true, reason: progress.blocked.length > 0 ? 'DisruptionBudget' : 'Timeout' },
  );
}

/** Resolves with the node once its Ready condition is True; a node that does not exist yet is waited for too. */
export async function waitNodeReady(
  kube: KubernetesClient,
  name: string,
  opts: { timeoutMs: number; signal?: AbortSignal },
): Promise<NodeObject> {
  return kube.waitForCondition<NodeObject>(nodeRef(name), 'Ready', {
    timeoutMs: opts.timeoutMs,
    description: 'condition Ready=True (its kubelet reporting)',
    ...(opts.signal !== undefined && { signal: opts.signal }),
  });
}

/** Deletes the node and waits until it is gone; a node already gone is success. */
export async function deleteNode(kube: KubernetesClient, name: string, opts: { waitMs?: number } = {}): Promise<void> {
  await kube.delete(nodeRef(name), opts);
}

function sleep(ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener('abort', done, { once: true });
  });
}
