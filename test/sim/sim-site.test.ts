// Needs: the real Temporal dev server (tools cache). One real sitePatch (real workflow, activities and clients)
// against one simulated site of 3 hosts: the simulation is faithful enough for the fleet benchmark when the real
// clients find in it everything they ask for, in the order a rolling patch asks.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createSiteActivities } from '../../src/activities/site.ts';
import { IronicClient } from '../../src/clients/ironic/index.ts';
import { kubernetesClient } from '../../src/clients/kubernetes/index.ts';
import { siteOperationId } from '../../src/domain/operations.ts';
import type { Store } from '../../src/store/index.ts';
import type { sitePatch } from '../../src/workflows/index.ts';
import { createWorker } from '../../src/worker/worker.ts';
import { openTestStore } from '../support/store.ts';
import { startTemporal, testNamespace, uniqueName, workflowBundle } from '../support/temporal.ts';
import { testCodecKeys } from '../support/test-codec-keys.ts';
import { installedVersion, patchVersion, profileName, seedProfiles, seedSite, simLayout } from './inventory.ts';
import { type SimServer, startSimServer } from './server.ts';

const layout = simLayout(3);
let env: TestWorkflowEnvironment;
let store: Store;
let sim: SimServer;
let worker: Worker;
let running: Promise<void>;
const taskQueue = uniqueName('sim');

beforeAll(async () => {
  [env, store, sim] = await Promise.all([
    startTemporal(),
    openTestStore('pglite'),
    // A reboot that takes a while: the node goes NotReady, so waiting for Ready goes through a watch.
    startSimServer(layout, { hostStepSeconds: 0.3, rebootSeconds: 1.5, podsPerHost: 2, recordEvents: true }),
  ]);
  await seedProfiles(store);
  worker = await createWorker({
    connection: env.nativeConnection,
    namespace: testNamespace,
    codecKeys: testCodecKeys,
    taskQueue,
    activities: createSiteActivities({
      store,
      ironic: (url) => new IronicClient({ url }),
      kube: (path) => kubernetesClient(path),
      helm: () => {
        throw new Error('the simulated profiles change no chart: helm is not called');
      },
      bpaPollIntervalMs: 100,
    }),
    workflowBundle: await workflowBundle(),
  });
  running = worker.run();
});

afterAll(async () => {
  worker.shutdown();
  await running;
  await Promise.all([env.teardown(), store.close(), sim.close()]);
});

async function patch(site: string) {
  return env.client.workflow.execute<typeof sitePatch>('sitePatch', {
    taskQueue,
    workflowId: siteOperationId(site, 'patch'),
    args: [{ site, profile: { name: profileName, version: patchVersion }, maxUnavailable: 1 }],
  });
}

describe('the simulated site', () => {
  it('takes a real sitePatch: every host patched in rolling order, cordoned and drained before, uncordoned after', async () => {
    const site = uniqueName('edge');
    await seedSite(store, sim, site, layout.hosts);
    const result = await patch(site);

    expect(result.hosts).toEqual(layout.hosts.map((h) => ({ host: h.name, rebooted: true })));
    const view = sim.sim.sites.get(site);
    expect(view).toBeDefined();
    const hosts = layout.hosts.map((h, i) => ({
      name: h.name,
      versions: Object.fromEntries([...(view?.hosts[i]?.packages ?? [])].map(([n, r]) => [n, r.version])),
      unschedulable: view?.hosts[i]?.unschedulable,
    }));
    expect(hosts).toEqual(
      layout.hosts.map((h) => ({
        name: h.name,
        versions: { 'nic-driver': patchVersion, 'node-agent': patchVersion },
        unschedulable: false,
      })),
    );

    // One host at a time: each is cordoned, drained, patched, rebooted and uncordoned before the next is touched.
    const events = view?.events ?? [];
    const expected = layout.hosts.flatMap((h) => [
      `cordon ${h.name}`,
      `evict app-0-${h.name}`,
      `evict app-1-${h.name}`,
      `install start ${h.name}`,
      `install end ${h.name}`,
      `reboot ${h.name}`,
      `uncordon ${h.name}`,
    ]);
    expect(events).toEqual(expected);

    const stats = sim.stats();
    expect(stats.unhandled).toEqual({});
    expect(stats.requests['kube WATCH nodes']).toBeGreaterThanOrEqual(layout.hosts.length);
    expect(stats.requests['bootstrap GET secret']).toBe(1);
    // The site's clusters are reached over kept-alive connections: a TLS handshake for the bootstrap cluster, one for
    // the site's own and one for each host's Ready watch held beside it, not one per call (36 here).
    expect(stats.requests['connections https']).toBeLessThanOrEqual(2 + layout.hosts.length);
    // Two small artifacts, each sent whole without asking where an upload stands first.
    expect(stats.requests['bpa PUT upload']).toBe(2);
    expect(stats.requests['bpa GET upload']).toBeUndefined();
    // No node is read on its own: the cordon writes it as the host's lookup listed it, the uncordon as it was seen
    // Ready; and the core kinds need no discovery.
    expect(stats.requests['kube GET node']).toBeUndefined();
    expect(stats.requests['kube GET discovery']).toBeUndefined();
    expect(stats.requests['bootstrap GET discovery']).toBeUndefined();
    expect(stats.requests['kube PUT node']).toBe(2 * layout.hosts.length);
    expect((await store.sites.get(site)).status).toMatchObject({
      phase: 'Ready',
      installedProfile: { name: profileName, version: patchVersion },
    });
  });

  it('fails the hosts it is told to: the patch rolls the site back to its old packages', async () => {
    const site = uniqueName('edge');
    await seedSite(store, sim, site, layout.hosts);
    sim.sim.behaviour.failShare = 1;
    try {
      await expect(patch(site)).rejects.toBeInstanceOf(WorkflowFailedError);
    } finally {
      sim.sim.behaviour.failShare = 0;
    }
    const view = sim.sim.sites.get(site);
    const first = layout.hosts[0]!.name;
    expect(view?.events).toEqual([
      `cordon ${first}`,
      `evict app-0-${first}`,
      `evict app-1-${first}`,
      `install start ${first}`,
      `install end ${first} failed ${first}`,
      // The failed host's rollback finds it still on the old packages: nothing to undo, it is uncordoned.
      `uncordon ${first}`,
    ]);
    for (const host of view?.hosts ?? []) {
      expect(Object.fromEntries([...host.packages].map(([n, r]) => [n, r.version]))).toEqual({
        'nic-driver': installedVersion,
        'node-agent': installedVersion,
      });
    }
    expect((await store.sites.get(site)).status?.installedProfile?.version).toBe(installedVersion);
  });
});
