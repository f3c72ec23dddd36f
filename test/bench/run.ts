/**
 * `npm run bench`: every benchmark in turn; `npm run bench -- <name> [options...]`: one of them, with its own
 * options (e.g. `npm run bench -- fleet 100x10`). Each runs as a process of its own, as `npm run bench:<name>` would.
 */
import { spawnSync } from 'node:child_process';

const benchmarks: Record<string, string[]> = {
  bpa: ['bench/bpa.ts', '--hosts', '100,1000'],
  fleet: ['test/bench/fleet.ts'],
};

const [name, ...rest] = process.argv.slice(2);
const selected = name === undefined ? Object.keys(benchmarks) : [name];
for (const bench of selected) {
  const command = benchmarks[bench];
  if (!command) {
    console.error(`unknown benchmark "${bench}"; known: ${Object.keys(benchmarks).join(', ')}`);
    process.exit(2);
  }
  // Options given after the name replace the benchmark's defaults, which are only its script's own defaults.
  const args = name === undefined || rest.length === 0 ? command : [command[0] ?? '', ...rest];
  console.log(`--- benchmark ${bench}: node ${args.join(' ')}`);
  const run = spawnSync(process.execPath, args, { stdio: 'inherit' });
  if (run.status !== 0) process.exit(run.status ?? 1);
}
