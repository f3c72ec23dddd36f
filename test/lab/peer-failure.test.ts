// Needs: nothing running: it makes the ironic peer fail on purpose, in a lab folder of its own.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from '@jest/globals';

const node = process.execPath;

function run(args: string[], env: Record<string, string>) {
  const r = spawnSync(node, args, { encoding: 'utf8', env: { ...process.env, ...env } });
  return { code: r.status, out: `${r.stdout}${r.stderr}` };
}

describe('a lab peer that cannot start', () => {
  it('is reported by lab up, and a test needing it fails with a message naming it', () => {
    const labDir = mkdtempSync(join(tmpdir(), 'icn-lab-'));
    // Half seconds are refused: Ironic's fake driver takes whole seconds only.
    const env = { ICN_LAB_DIR: labDir, ICN_LAB_IRONIC_DEPLOY_DELAY: '0.5' };
    const up = run(['deploy/dev/lab/index.ts', 'up', 'ironic'], env);
    expect(up.code).toBe(1);
    expect(up.out).toMatch(/✗ ironic: .*ICN_LAB_IRONIC_DEPLOY_DELAY/);

    const needing = run(
      ['--input-type=module', '-e', "import { labPeer } from './test/support/lab.ts'; labPeer('ironic');"],
      env,
    );
    expect(needing.code).not.toBe(0);
    expect(needing.out).toMatch(/lab peer "ironic" is not available: .*ICN_LAB_IRONIC_DEPLOY_DELAY/);

    const never = run(
      ['--input-type=module', '-e', "import { labPeer } from './test/support/lab.ts'; labPeer('kubernetes');"],
      env,
    );
    expect(never.out).toContain('lab peer "kubernetes" is not available: not started (npm run lab -- up)');
  });
});
