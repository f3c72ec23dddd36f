/** Small pieces shared by the controller stand-ins: a clock of first sightings and status helpers. */
import type { Condition, KubeObject } from '../../src/clients/kubernetes/index.ts';

/** The annotation that makes a stand-in fail an object on demand; its value names the phase that fails. */
export const failAnnotation = 'standin.icn.test/fail';
/** An optional message for that failure (the stand-in makes one up otherwise). */
export const failMessageAnnotation = 'standin.icn.test/fail-message';
/** Marks what a stand-in created on its own (Nodes, kubeconfig Secrets), so that it cleans up only what is its own. */
export const managedLabel = 'standin.icn.test/managed-by';
export const managedBy = 'cluster-api-standin';

/**
 * When each (object, phase) was first seen, so that timed transitions need no state in the objects themselves:
 * controllers requeue after a delay, the stand-in compares with the time it first saw the phase.
 */
export class Sightings {
  readonly #first = new Map<string, number>();

  /** Milliseconds since `key` was first asked about (0 the first time). */
  elapsed(key: string): number {
    const now = Date.now();
    const first = this.#first.get(key);
    if (first === undefined) {
      this.#first.set(key, now);
      return 0;
    }
    return now - first;
  }

  forget(prefix: string): void {
    for (const key of this.#first.keys()) if (key.startsWith(prefix)) this.#first.delete(key);
  }
}

export const now = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z');

export function statusOf(object: KubeObject): Record<string, unknown> {
  return typeof object.status === 'object' && object.status !== null ? (object.status as Record<string, unknown>) : {};
}

export function specOf(object: KubeObject): Record<string, unknown> {
  return typeof object.spec === 'object' && object.spec !== null ? (object.spec as Record<string, unknown>) : {};
}

/** Keeps lastTransitionTime when a condition's status did not change, as controllers do. */
export function condition(
  previous: KubeObject,
  type: string,
  status: Condition['status'],
  reason?: string,
  message?: string,
): Condition {
  const old = (statusOf(previous).conditions as Condition[] | undefined)?.find((c) => c.type === type);
  return {
    type,
    status,
    lastTransitionTime: old?.status === status && old.lastTransitionTime !== undefined ? old.lastTransitionTime : now(),
    ...(reason === undefined ? {} : { reason }),
    ...(message === undefined ? {} : { message }),
  };
}

/** True when every field of `patch` already has that value in `status` (a write would change nothing). */
export function unchanged(status: Record<string, unknown>, patch: Record<string, unknown>): boolean {
  return Object.entries(patch).every(([k, v]) =>
    v === null ? status[k] === undefined : JSON.stringify(status[k]) === JSON.stringify(v),
  );
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
