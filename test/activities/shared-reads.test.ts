// Needs: no peer (a read counted in memory).
import { describe, expect, it } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { sharedRead } from '../../src/activities/shared-reads.ts';

describe('sharedRead', () => {
  it('serves the callers of one key with one read; other keys are read on their own', async () => {
    const asked: string[] = [];
    const read = sharedRead(
      async (name: string, version: string) => {
        asked.push(`${name} ${version}`);
        await sleep(5);
        return { name, version };
      },
      { ttlMs: 60_000 },
    );
    const first = await Promise.all([read('edge-base', '1.0'), read('edge-base', '1.0'), read('edge-base', '2.0')]);
    expect(first.map((p) => p.version)).toEqual(['1.0', '1.0', '2.0']);
    expect(await read('edge-base', '1.0')).toBe(first[0]);
    expect(asked).toEqual(['edge-base 1.0', 'edge-base 2.0']);
  });

  it('reads again once its time is up', async () => {
    let calls = 0;
    const read = sharedRead(
      async (name: string) => {
        calls++;
        return name;
      },
      { ttlMs: 50 },
    );
    await read('edge-base');
    // Well past the 50 ms: however slow the machine, the first read is stale by then.
    await sleep(150);
    await read('edge-base');
    expect(calls).toBe(2);
  });

  it('does not keep a failed read: the next caller asks again', async () => {
    let calls = 0;
    const read = sharedRead(
      async (sha256: string) => {
        calls++;
        if (calls === 1) throw new Error(`${sha256}: connection reset`);
        return sha256.length;
      },
      { ttlMs: 60_000 },
    );
    await expect(read('abc')).rejects.toThrow('connection reset');
    expect(await read('abc')).toBe(3);
    expect(calls).toBe(2);
  });
});
