// Needs: the real Temporal dev server (tools cache).
// Where a site's activities run: on the global worker for agentMode central, on the site agent's queue for local.
// The activities are mocked, one mock per worker, so that each call's log says which worker ran it.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createSiteLocalActivities } from '../../src/activities/site.ts';
import { ConfigError, parseConfig } from '../../src/domain/config.ts';
import type { SitePlan } from '../../src/domain/plan.ts';
import { createLogger } from '../../src/observability/logger.ts';
import type { Store } from '../../src/store/index.ts';
import { realPeers } from '../../src/worker/peers.ts';
import { createSiteAgentWorker, siteAgentTaskQueue, startSiteAgent } from '../../src/worker/site-agent.ts';
import { siteInstall } from '../../src/workflows/index.ts';
import { progress } from '../../src/workflows/progress.ts';
import type { InventoryActivities, SiteActivities } from '../../src/workflows/site-activities.ts';
import { mockActivities, plan } from '../support/site-activities-mock.ts';
import { openTestStore } from '../support/store.ts';
import { createTestWorker, startTemporal, testNamespace, uniqueName } from '../support/temporal.ts';
import { testCodecKeys, testEnv } from '../support/test-codec-keys.ts';

let env: TestWorkflowEnvironment;
let store: Store;
beforeAll(async () => {
  [env, store] = await Promise.all([startTemporal(), openTestStore('pglite')]);
});
afterAll(async () => {
  await Promise.all([env.teardown(), store.close()]);
});

// A record, so that an inventory activity added to the contract and not listed here is a type error.
const inventoryNames = Object.keys({
  loadSitePlan: true,
  loadPatchPlan: true,
  loadInstalledPlan: true,
  forgetHost: true,
  recordSiteStatus: true,
  recordHostState: true,
} satisfies Record<keyof InventoryActivities, true>);

type Mock = ReturnType<typeof mockActivities>;
const isInventory = (call: string) => inventoryNames.includes(call.split(':')[0] ?? call);
const names = (calls: string[]) => [...new Set(calls.map((c) => c.split(':')[0]))].sort();

function inventoryOf(mock: Mock): InventoryActivities {
  return Object.fromEntries(
    Object.entries(mock.activities).filter(([name]) => isInventory(name)),
  ) as unknown as InventoryActivities;
}
function siteOf(mock: Mock): SiteActivities {
  return Object.fromEntries(
    Object.entries(mock.activities).filter(([name]) => !isInventory(name)),
  ) as unknown as SiteActivities;
}

const withAgentMode = (p: SitePlan, agentMode: 'central' | 'local'): SitePlan => ({
  ...p,
  spec: { ...p.spec, agentMode },
});

/** The agent's worker as startSiteAgent builds it, with mocked activities and the test server's connection. */
const siteAgent = (mock: Mock): Promise<Worker> =>
  createSiteAgentWorker({
    connection: env.nativeConnection,
    namespace: testNamespace,
    codecKeys: testCodecKeys,
    site: 'edge-01',
    activities: siteOf(mock),
  });

const siteSteps = ['bringUpCluster', 'distributeArtifacts', 'installChart', 'installPackages', 'provisionHost'];
const installResult = {
  site: 'edge-01',
  profile: { name: 'edge-base', version: '1.0.0' },
  hosts: ['host-1', 'host-2', 'host-3'],
  kubeconfigSecret: 'edge-01-kubeconfig',
  charts: { multus: 1 },
};

const startInstall = (taskQueue: string) =>
  env.client.workflow.start(siteInstall, {
    taskQueue,
    workflowId: uniqueName('site/edge-01/install'),
    args: [{ site: 'edge-01', keepOnFailure: false }],
  });

describe('the site agent', () => {
  it('registers every site activity of the contract, none of the inventory', () => {
    const local = Object.keys(createSiteLocalActivities(realPeers(store, { helmBinary: 'helm' })));
    expect(local).toEqual(expect.arrayContaining(Object.keys(siteOf(mockActivities({ plan: plan('kubeadm') })))));
    expect(local.filter(isInventory)).toEqual([]);
  });

  it('agentMode central: every activity runs on the global worker, none on a running site agent', async () => {
    const global = mockActivities({ plan: withAgentMode(plan('kubeadm'), 'central') });
    const site = mockActivities({ plan: plan('kubeadm') });
    const taskQueue = uniqueName('global');
    const globalWorker = await createTestWorker(env, taskQueue, global.activities as never);
    const agent = await siteAgent(site);
    const result = await globalWorker.runUntil(agent.runUntil(async () => (await startInstall(taskQueue)).result()));
    expect(result).toEqual(installResult);
    expect(names(global.calls)).toEqual(['loadSitePlan', ...siteSteps].sort());
    expect(global.statuses.at(-1)).toMatchObject({ phase: 'Ready' });
    expect(site.calls).toEqual([]);
    expect(site.statuses).toEqual([]);
  });

  it('agentMode local: site activities run on site.edge-01, inventory activities on the global queue', async () => {
    const global = mockActivities({ plan: withAgentMode(plan('kubeadm'), 'local') });
    const site = mockActivities({ plan: plan('kubeadm') });
    const taskQueue = uniqueName('global');
    const globalWorker = await createTestWorker(env, taskQueue, inventoryOf(global) as never);
    const agent = await siteAgent(site);
    const result = await globalWorker.runUntil(agent.runUntil(async () => (await startInstall(taskQueue)).result()));
    expect(result).toEqual(installResult);
    expect(names(site.calls)).toEqual(siteSteps);
    expect(site.calls.filter(isInventory)).toEqual([]);
    expect(names(global.calls)).toEqual(['loadSitePlan']);
    expect(global.statuses.map((s) => (s as { phase?: string }).phase)).toEqual(['Installing', 'Ready']);
    expect(site.statuses).toEqual([]);
  });

  it('agentMode local with no agent running: the install waits at its first site activity until one starts', async () => {
    const global = mockActivities({ plan: withAgentMode(plan('kubeadm'), 'local') });
    const site = mockActivities({ plan: plan('kubeadm') });
    const taskQueue = uniqueName('global');
    const globalWorker = await createTestWorker(env, taskQueue, inventoryOf(global) as never);
    const result = await globalWorker.runUntil(async () => {
      const handle = await startInstall(taskQueue);
      let step: string | undefined;
      for (let i = 0; i < 100 && step !== 'distributing artifacts'; i++) {
        step = (await handle.query(progress)).step;
        if (step !== 'distributing artifacts') await new Promise((resolve) => setTimeout(resolve, 100));
      }
      expect(step).toBe('distributing artifacts');
      // Long enough for a wrongly routed activity to have run on the global worker.
      await new Promise((resolve) => setTimeout(resolve, 3000));
      const { raw } = await handle.describe();
      expect(raw.pendingActivities).toHaveLength(1);
      const pending = raw.pendingActivities?.[0];
      expect(pending?.activityType?.name).toBe('distributeArtifacts');
      expect(pending?.activityOptions?.taskQueue?.name).toBe(siteAgentTaskQueue('edge-01'));
      expect(site.calls).toEqual([]);
      expect((await handle.query(progress)).step).toBe('distributing artifacts');

      const agent = await siteAgent(site);
      return agent.runUntil(handle.result());
    });
    expect(result).toEqual(installResult);
    expect(names(site.calls)).toEqual(siteSteps);
    expect(global.statuses.at(-1)).toMatchObject({ phase: 'Ready' });
  });

  it('startSiteAgent refuses a configuration without ICN_SITE', async () => {
    const config = parseConfig(testEnv());
    const logger = createLogger({ level: 'silent', name: 'test' });
    const start = startSiteAgent(config, { store, logger });
    await expect(start).rejects.toThrow(ConfigError);
    await expect(start).rejects.toThrow(/ICN_SITE/);
  });
});
