// Needs: the real Temporal dev server (tools cache). icnctl runs as a process against the API; the rollout is the real
// fleetRollout over an embedded inventory, the site operations it starts are stand-ins (test/workflows/fixtures).
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { tokens } from '../support/api.ts';
import { startRolloutStack } from '../workflows/fixtures/rollout-fleet.ts';

const icnctl = fileURLToPath(new URL('../../src/cli/icnctl.ts', import.meta.url));
let stack: Awaited<ReturnType<typeof startRolloutStack>>;
let apiUrl: string;

beforeAll(async () => {
  stack = await startRolloutStack();
  apiUrl = await stack.api.listen({ host: '127.0.0.1', port: 0 });
  const sites = {
    live: ['cli-1-300ms', 'cli-2-300ms', 'cli-3-300ms'],
    held: ['held-1-hang', 'held-2-hang', 'held-3-hang', 'held-4-hang'],
    broken: ['brk-1-fail', 'brk-2'],
    nightly: ['ngt-1', 'ngt-2'],
  };
  for (const [batch, names] of Object.entries(sites)) {
    for (const name of names) await stack.store.sites.create({ name, labels: { batch } }, {} as never);
  }
});
afterAll(async () => {
  await stack.stop();
});

async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [icnctl, '--server', apiUrl, ...args], {
      env: { ...process.env, ICN_API_TOKEN: tokens.operator },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const upgrade = ['--operation', 'upgrade', '--kubernetes-version', 'v1.35.0'];

describe('icnctl rollout', () => {
  it('starts a rollout and shows each site and the counts as they change, until it completes (exit 0)', async () => {
    const r = await run('rollout', 'start', '-l', 'batch=live', ...upgrade, '--canary', 'cli-2-300ms');
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    for (const line of [
      'canaries first: cli-2-300ms',
      'cli-2-300ms: running',
      'cli-2-300ms: succeeded',
      'rolling out',
      'cli-3-300ms: succeeded',
      '3 total, 3 succeeded',
      'rollout completed',
    ]) {
      expect(r.stdout).toContain(line);
    }
    expect(r.stdout.indexOf('cli-2-300ms: succeeded')).toBeLessThan(r.stdout.indexOf('cli-1-300ms: running'));
  });

  it('pauses, changes concurrency, resumes and cancels a running rollout; refusals exit 2 with the reason', async () => {
    const started = await run(
      ...['-o', 'json', 'rollout', 'start', '-l', 'batch=held', ...upgrade, '--max-concurrency', '1', '--no-wait'],
    );
    expect(started.code).toBe(0);
    const { rolloutId } = JSON.parse(started.stdout) as { rolloutId: string };
    const following = run('rollout', 'status', rolloutId);

    const paused = await run('rollout', 'pause', rolloutId, '--reason', 'dashboards red');
    expect(paused.stdout).toContain(`rollout ${rolloutId}: paused (dashboards red); maxConcurrency 1`);
    const again = await run('rollout', 'pause', rolloutId);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain('already paused (dashboards red)');
    const zero = await run('rollout', 'set-concurrency', rolloutId, '0');
    expect(zero.code).toBe(2);
    expect(zero.stderr).toContain('body.maxConcurrency');
    expect((await run('rollout', 'set-concurrency', rolloutId, '2')).stdout).toContain('maxConcurrency 2');
    expect((await run('rollout', 'resume', rolloutId)).stdout).toContain(`rollout ${rolloutId}: running`);
    expect((await run('rollout', 'approve', rolloutId)).stderr).toContain('nothing to approve');

    let once = '';
    for (let i = 0; i < 50 && !once.includes('running'); i++) {
      once = (await run('rollout', 'status', rolloutId, '--once')).stdout;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(once).toContain('maxConcurrency 2, failure limit 0, canary gate open, run 1');
    expect((await run('rollout', 'list')).stdout).toMatch(new RegExp(`${rolloutId}\\s+RUNNING`));

    expect((await run('rollout', 'cancel', rolloutId)).stdout).toContain('cancel requested');
    const followed = await following;
    expect(followed.code).toBe(1);
    expect(followed.stdout).toContain('paused: dashboards red');
    expect(followed.stdout).toContain('held-1-hang: running');
    expect(followed.stdout).toContain('held-1-hang: cancelled');
    expect(followed.stdout).toMatch(/4 total, 2 cancelled, 2 skipped/);
    expect(followed.stdout).toMatch(/rollout cancel+ed/);
  });

  it('exits 1 with the reason when the rollout stops past its failure budget', async () => {
    const r = await run('rollout', 'start', '--sites', 'brk-1-fail,brk-2', ...upgrade, '--on-failure-limit', 'stop');
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('brk-1-fail: failed (upgrade of brk-1-fail broke (fixture))');
    expect(r.stdout).toMatch(/rollout failed: rollout stopped: 1 sites failed, more than maxFailures \(0\)/);
  });

  it('names a bad option (exit 2)', async () => {
    for (const args of [
      ['--max-failures', 'many'],
      ['--window', '22-04'],
      ['--on-site-timeout', 'later'],
    ]) {
      const r = await run('rollout', 'start', '-l', 'batch=live', ...upgrade, ...args);
      expect(r.code).toBe(2);
      expect(r.stderr).toContain(args[0]!);
    }
    const takeoverOnUpgrade = await run('rollout', 'start', '-l', 'batch=live', ...upgrade, '--host-takeover', '600');
    expect(takeoverOnUpgrade.code).toBe(2);
    expect(takeoverOnUpgrade.stderr).toContain('body.hostTakeoverSeconds: applies to a patch rollout only');
    const noSites = await run('rollout', 'start', ...upgrade);
    expect(noSites.code).toBe(2);
    expect(noSites.stderr).toContain('body.selector: needs matchLabels, names or both');
  });
});

describe('icnctl schedule', () => {
  it('lists schedules and triggers one now: its rollout runs and shows as the last one', async () => {
    const created = await run(
      'schedule',
      'create',
      'nightly',
      '--cron',
      '0 2 * * *',
      '-l',
      'batch=nightly',
      ...upgrade,
    );
    expect(created.code).toBe(0);
    expect((await run('schedule', 'trigger', 'nightly')).stdout).toContain('schedule/nightly triggered');
    let listed = '';
    for (let i = 0; i < 50 && !listed.includes('schedule-nightly-'); i++) {
      listed = (await run('schedule', 'list')).stdout;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const rolloutId = /schedule-nightly-\S+/.exec(listed)?.[0] ?? '';
    expect(listed).toMatch(new RegExp(`nightly\\s+false\\s+\\S+\\s+${rolloutId}`));
    const followed = await run('rollout', 'status', rolloutId);
    expect(followed.code).toBe(0);
    expect(followed.stdout).toContain('2 total, 2 succeeded');
    expect((await run('schedule', 'delete', 'nightly')).code).toBe(0);
  });
});
