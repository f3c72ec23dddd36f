/**
 * One `up` or `down` of a peer at a time across processes (parallel Jest workers, a developer's `npm run lab` beside
 * a test run): two cold starts on one data folder would start two etcds on the same files.
 */
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { isAlive, sleep } from '../processes.ts';

function holder(lock: string): number | undefined {
  try {
    const pid = Number(readFileSync(join(lock, 'pid'), 'utf8'));
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isStale(lock: string): boolean {
  const pid = holder(lock);
  if (pid !== undefined) return !isAlive(pid);
  // Created but its pid not yet written: stale only if that was long ago.
  try {
    return Date.now() - statSync(lock).mtimeMs > 10_000;
  } catch {
    return true;
  }
}

export async function withLock<T>(dir: string, what: string, timeoutMs: number, fn: () => Promise<T>): Promise<T> {
  const lock = join(dir, 'lock');
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (isStale(lock)) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new Error(`${what}: another process (pid ${String(holder(lock))}) has held ${lock} for too long`, {
          cause: err,
        });
      }
      await sleep(500);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}
