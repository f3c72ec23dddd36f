import { spawnSync } from 'node:child_process';

/**
 * Before any test file: the temporal CLI, then every lab peer (each builds or installs what it lacks). They run as
 * child processes (`npm run tools`, `npm run lab -- up`), out of Jest's module hooks, exactly as a person runs them.
 * A peer that fails is recorded, not thrown: the tests that need it fail naming it, the others run.
 */
export default function globalSetup(): void {
  const node = process.execPath;
  const tools = spawnSync(node, ['deploy/dev/tools.ts', 'temporal'], { stdio: 'inherit' });
  if (tools.status !== 0) throw new Error('building the temporal CLI failed (see above)');
  const started = Date.now();
  spawnSync(node, ['deploy/dev/lab/index.ts', 'up'], { stdio: 'inherit' });
  console.log(`lab up in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}
