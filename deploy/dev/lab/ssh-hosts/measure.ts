/**
 * Measures how long the simulated hosts take to start and how much memory they take:
 * `node deploy/dev/lab/ssh-hosts/measure.ts [counts...]` (default 3 100 1000). Each count starts from an empty
 * folder and is stopped after measuring; prints one JSON line per count.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sleep } from '../processes.ts';
import { sshHostsPssBytes, startSshHosts, stopSshHosts } from './hosts.ts';

const counts = process.argv.slice(2).map(Number);
for (const count of counts.length > 0 ? counts : [3, 100, 1000]) {
  const dir = mkdtempSync(join(tmpdir(), `icn-ssh-hosts-${count}-`));
  try {
    const started = performance.now();
    await startSshHosts({ count, dir });
    const startSeconds = (performance.now() - started) / 1000;
    // Let every sshd finish its start-up before reading memory.
    await sleep(1000);
    const pss = sshHostsPssBytes(dir);
    const stopped = performance.now();
    await stopSshHosts(dir);
    const stopSeconds = (performance.now() - stopped) / 1000;
    console.log(
      JSON.stringify({
        count,
        startSeconds: Number(startSeconds.toFixed(2)),
        stopSeconds: Number(stopSeconds.toFixed(2)),
        pssMiB: Number((pss / 2 ** 20).toFixed(1)),
        pssKiBPerHost: Math.round(pss / 1024 / count),
      }),
    );
  } finally {
    await stopSshHosts(dir);
    rmSync(dir, { recursive: true, force: true });
  }
}
