import { spawnSync } from 'node:child_process';

/** Leaves nothing running after the suite; ICN_KEEP_LAB=1 keeps the lab up for quicker reruns. */
export default function globalTeardown(): void {
  if (process.env.ICN_KEEP_LAB !== '1')
    spawnSync(process.execPath, ['deploy/dev/lab/index.ts', 'down'], { stdio: 'inherit' });
}
