/**
 * Reads that every site of a fleet makes alike and at once (the same two profiles, the same artifacts): one query
 * serves every caller within `ttlMs`, where a rollout's start made one per site. Only for what does not change once
 * written: software profiles are immutable per version, artifacts are named by their content. A read that fails is
 * not kept, so the next caller asks again.
 */
import { LRUCache } from 'lru-cache';

export interface SharedReadOptions {
  ttlMs: number;
  /** Distinct keys kept at most (least recently used go first). */
  max?: number;
}

export function sharedRead<K extends string[], V>(
  read: (...key: K) => Promise<V>,
  opts: SharedReadOptions,
): (...key: K) => Promise<V> {
  const held = new LRUCache<string, Promise<V>>({ max: opts.max ?? 1000, ttl: opts.ttlMs });
  return (...key: K) => {
    // NUL cannot occur in a name or a version: the joined key is unambiguous.
    const id = key.join('\0');
    let value = held.get(id);
    if (value === undefined) {
      value = read(...key);
      held.set(id, value);
      value.catch(() => {
        if (held.peek(id) === value) held.delete(id);
      });
    }
    return value;
  };
}
