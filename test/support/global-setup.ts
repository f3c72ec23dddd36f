import { labUp } from '../../deploy/dev/lab/index.ts';
import { ensureGoTool, temporalCli } from '../../deploy/dev/tools.ts';

/**
 * Before any test file: the temporal CLI, then every lab peer at once (each builds or installs what it lacks). A peer
 * that fails is recorded, not thrown: the tests that need it fail naming it, the others run.
 */
export default async function globalSetup(): Promise<void> {
  ensureGoTool(temporalCli);
  const started = Date.now();
  const results = await labUp();
  const lines = results.map((r) =>
    r.error ? `  ✗ ${r.name}: ${r.error.split('\n')[0] ?? ''}` : `  ✓ ${r.name} (${r.seconds?.toFixed(1)} s)`,
  );
  console.log(`\nlab up in ${((Date.now() - started) / 1000).toFixed(1)} s\n${lines.join('\n')}`);
}
