// Needs: the real Temporal dev server (tools cache). The site workflows run for real on a worker whose activities are
// mocked (test/support/site-activities-mock.ts): this test is about icnctl following operations, not the peers.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Context } from '@temporalio/activity';
import { startApiStack, tokens } from '../support/api.ts';
import { mockActivities, plan } from '../support/site-activities-mock.ts';

const icnctl = fileURLToPath(new URL('../../src/cli/icnctl.ts', import.meta.url));
let stack: Awaited<ReturnType<typeof startApiStack>>;
let apiUrl: string;

beforeAll(async () => {
  const mock = mockActivities({ plan: plan('kubeadm') });
  stack = await startApiStack({
    ...mock.activities,
    // Each site gets the mock plan under its own name; edge-slow's host-2 never finishes deploying.
    loadSitePlan: async (site: string) => ({ ...plan('kubeadm'), site }),
    provisionHost: async (input: Parameters<typeof mock.activities.provisionHost>[0]) => {
      // edge-01's hosts take a moment, so that icnctl's polling sees the install move.
      if (input.site === 'edge-01') await Context.current().sleep(1500);
      if (input.site === 'edge-slow' && input.host.name === 'host-2') {
        for (;;) {
          Context.current().heartbeat();
          await Context.current().sleep(100);
        }
      }
      return mock.activities.provisionHost(input);
    },
  } as never);
  apiUrl = await stack.api.listen({ host: '127.0.0.1', port: 0 });
  for (const name of ['edge-01', 'edge-02', 'edge-slow']) {
    await stack.store.sites.create({ name, labels: { tier: 'edge' } }, {} as never);
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

describe('icnctl site operations', () => {
  it('installs a site, showing each step and host as it happens, and exits 0', async () => {
    const r = await run('install', 'edge-01');
    expect(r.code).toBe(0);
    for (const line of [
      'provisioning hosts',
      'host-1: provisioning',
      'host-1: packages installed',
      'siteInstall completed',
    ]) {
      expect(r.stdout).toContain(line);
    }
    const ops = await run('operations', 'edge-01');
    expect(ops.stdout).toMatch(/site\/edge-01\/install\s+siteInstall\s+COMPLETED/);
  });

  it('returns at once with --no-wait; a busy site is refused (exit 2); a cancelled install exits 1', async () => {
    const started = await run('install', 'edge-slow', '--no-wait');
    expect(started).toMatchObject({ code: 0 });
    expect(started.stdout).toContain('install of edge-slow started: site/edge-slow/install');
    const busy = await run('upgrade', 'edge-slow', '--kubernetes-version', 'v1.35.0');
    expect(busy.code).toBe(2);
    expect(busy.stderr).toContain('busy with siteInstall');
    expect((await run('install', 'edge-slow')).code).toBe(2);
    const following = run('status', 'edge-slow', 'install');
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const cancel = await run('cancel', 'edge-slow', 'install');
    expect(cancel.code).toBe(0);
    expect(cancel.stdout).toContain('install of edge-slow: cancel requested');
    const followed = await following;
    expect(followed.code).toBe(1);
    expect(followed.stdout).toContain('host-2: provisioning');
    expect(followed.stdout).toMatch(/siteInstall cancel+ed/);
    expect((await run('operations', 'edge-slow')).stdout).toMatch(/site\/edge-slow\/install\s+siteInstall\s+CANCEL+ED/);
  });

  it('names a bad option (exit 2)', async () => {
    expect((await run('patch', 'edge-02', '--profile', 'no-version')).code).toBe(2);
    const r = await run('upgrade', 'edge-02', '--kubernetes-version', 'latest');
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('body.kubernetesVersion');
  });
});

// Rollouts are in icnctl-rollouts.test.ts, with a worker that runs them.
describe('icnctl schedules', () => {
  it('creates a weekly patch schedule, shows its next run, pauses and deletes it', async () => {
    const created = await run(
      'schedule',
      'create',
      'weekly',
      '--cron',
      '0 2 * * 6',
      '-l',
      'tier=edge',
      '--operation',
      'upgrade',
      '--kubernetes-version',
      'v1.35.0',
    );
    expect(created.code).toBe(0);
    expect(created.stdout).toMatch(/schedule\/weekly created; next runs: \d{4}-/);
    expect((await run('schedule', 'pause', 'weekly', '--note', 'change freeze')).code).toBe(0);
    const shown = await run('schedule', 'get', 'weekly');
    expect(shown.stdout).toMatch(/weekly\s+0 2 \* \* 6\s+true/);
    expect((await run('schedule', 'delete', 'weekly')).code).toBe(0);
    expect((await run('schedule', 'get', 'weekly')).code).toBe(2);
  });
});
