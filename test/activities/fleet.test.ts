// Needs: PGlite (embedded) for the inventory, and the real Temporal dev server (tools cache) for running operations.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Client } from '@temporalio/client';
import { MockActivityEnvironment, type TestWorkflowEnvironment } from '@temporalio/testing';
import { decodeArrayFromPayloads, loadDataConverter } from '@temporalio/common/lib/internal-non-workflow/index.js';
import { operationAttribute, rolloutAttribute, siteAttribute } from '../../src/temporal/search-attributes.ts';
import { dataConverter } from '../../src/temporal/connection.ts';
import { testCodecKeys } from '../support/test-codec-keys.ts';
import { createFleetActivities } from '../../src/activities/fleet.ts';
import type { RolloutSelector } from '../../src/domain/operations.ts';
import type { RolloutSitesStarted } from '../../src/workflows/rollout-activities.ts';
import type { Store } from '../../src/store/index.ts';
import { openTestStore } from '../support/store.ts';
import { startTemporal, uniqueName } from '../support/temporal.ts';

let store: Store;
let env: TestWorkflowEnvironment;
let fleet: ReturnType<typeof createFleetActivities>;

// Only what the activities read; the site's full spec is the inventory's business, checked where it is written.
const spec = (timeZone?: string) => (timeZone === undefined ? {} : { timeZone }) as never;

beforeAll(async () => {
  [store, env] = await Promise.all([openTestStore('pglite'), startTemporal()]);
  fleet = createFleetActivities({ store, temporal: () => env.client });
  for (let i = 0; i < 1205; i++) {
    const name = `edge-${String(i).padStart(4, '0')}`;
    await store.sites.create({ name, labels: { tier: 'edge' } }, spec(i % 2 === 0 ? 'Europe/Paris' : undefined));
  }
  await store.sites.create({ name: 'core-01', labels: { tier: 'core' } }, spec());
});
afterAll(async () => {
  await Promise.all([store.close(), env.teardown()]);
});

async function resolveAll(selector: RolloutSelector, limit: number) {
  const pages = [];
  let next: string | undefined;
  do {
    const page = await fleet.resolveRolloutSites({ selector, limit, ...(next !== undefined && { continue: next }) });
    pages.push(page);
    next = page.continue;
  } while (next !== undefined);
  return pages;
}

describe('resolveRolloutSites', () => {
  it('pages through the sites with the labels, in name order, with their time zones', async () => {
    const pages = await resolveAll({ matchLabels: { tier: 'edge' } }, 500);
    expect(pages.map((p) => p.sites.length)).toEqual([500, 500, 205]);
    const names = pages.flatMap((p) => p.sites.map((s) => s.name));
    expect(names).toHaveLength(1205);
    expect(names).toEqual([...names].sort());
    expect(pages[0]?.sites.slice(0, 2)).toEqual([
      { name: 'edge-0000', timeZone: 'Europe/Paris' },
      { name: 'edge-0001' },
    ]);
    expect(pages.flatMap((p) => p.missing)).toEqual([]);
  });

  it('caps a page at 1,000 sites whatever the caller asks', async () => {
    expect((await fleet.resolveRolloutSites({ selector: { matchLabels: {} }, limit: 50_000 })).sites).toHaveLength(
      1000,
    );
  });

  it('keeps named sites in the given order and reports those missing or without the labels', async () => {
    const pages = await resolveAll({ names: ['edge-0007', 'nowhere', 'core-01', 'edge-0003'], matchLabels: {} }, 2);
    expect(pages.flatMap((p) => p.sites.map((s) => s.name))).toEqual(['edge-0007', 'core-01', 'edge-0003']);
    const labelled = await resolveAll(
      { names: ['edge-0007', 'nowhere', 'core-01'], matchLabels: { tier: 'edge' } },
      10,
    );
    expect(labelled.flatMap((p) => p.missing)).toEqual([
      { site: 'nowhere', reason: 'no such site' },
      { site: 'core-01', reason: 'lacks the selector labels' },
    ]);
    await expect(
      fleet.resolveRolloutSites({ selector: { names: ['edge-0001'] }, limit: 10, continue: 'x' }),
    ).rejects.toThrow('is not a page token');
  });
});

/** What the look-up answers once visibility has caught up (it changes no more for a second). */
async function eventually<T>(read: () => Promise<T>): Promise<T> {
  let last = JSON.stringify(await read());
  let stableSince = Date.now();
  const deadline = Date.now() + 10_000;
  for (;;) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    const value = await read();
    const now = JSON.stringify(value);
    if (now !== last) {
      last = now;
      stableSince = Date.now();
    } else if (Date.now() - stableSince >= 1000 || Date.now() > deadline) {
      return value;
    }
  }
}

describe('findBusySites', () => {
  it('reports a site running another kind of operation, not one running the same kind', async () => {
    const site = uniqueName('busy');
    // No worker serves this queue: the workflow stays RUNNING, which is all the look-up sees. Started as the API
    // starts site operations, with the site's search attribute, which the look-up queries (visibility trails a start).
    await env.client.workflow.start('siteInstall', {
      taskQueue: uniqueName('nobody'),
      workflowId: `site/${site}/install`,
      args: [{ site }],
      typedSearchAttributes: [{ key: siteAttribute, value: site }],
    });
    expect(await eventually(() => fleet.findBusySites({ sites: [site, 'edge-0001'], operation: 'patch' }))).toEqual({
      [site]: `busy with install (site/${site}/install)`,
    });
    expect(await fleet.findBusySites({ sites: [site], operation: 'install' })).toEqual({});
    // By default the activity asks through the client of the worker that runs it.
    const viaContext = createFleetActivities({ store });
    const mock = new MockActivityEnvironment({}, { client: env.client });
    const input = { sites: [site], operation: 'upgrade' as const };
    expect(await mock.run((i: typeof input) => viaContext.findBusySites(i), input)).toEqual({
      [site]: `busy with install (site/${site}/install)`,
    });
    await env.client.workflow.getHandle(`site/${site}/install`).terminate('test over');
    expect(await eventually(() => fleet.findBusySites({ sites: [site], operation: 'patch' }))).toEqual({});
  });
});

describe('startRolloutSites', () => {
  it('starts each site under its business key with the rollout attributes; a retry joins them; another rollout finds them busy', async () => {
    const sites = Array.from({ length: 40 }, (_, i) => uniqueName(`bulk${i}`));
    const rolloutId = uniqueName('r');
    // No worker serves this queue: the operations stay RUNNING, which is what the starts and look-ups see.
    const taskQueue = uniqueName('nobody');
    const input = {
      rollout: `rollout/${rolloutId}`,
      rolloutId,
      operation: 'patch' as const,
      taskQueue,
      sites: sites.map((site) => ({ site, input: { site, maxUnavailable: 1 } })),
    };
    const mock = new MockActivityEnvironment({ heartbeatTimeoutMs: 60_000 }, { client: env.client });
    const viaContext = createFleetActivities({ store });
    const started = await mock.run((i: typeof input) => viaContext.startRolloutSites(i), input);
    expect(started).toEqual(Object.fromEntries(sites.map((s) => [s, { started: true }])));
    const first = sites[0] ?? '';
    const described = await env.client.workflow.getHandle(`site/${first}/patch`).describe();
    expect(described.type).toBe('sitePatch');
    expect(described.taskQueue).toBe(taskQueue);
    expect(described.typedSearchAttributes.get(rolloutAttribute)).toBe(rolloutId);
    expect(described.typedSearchAttributes.get(siteAttribute)).toBe(first);
    expect(described.typedSearchAttributes.get(operationAttribute)).toBe('patch');
    // The operation's input carries the rollout's workflow id, where it reports its end.
    const history = await env.client.workflow.getHandle(`site/${first}/patch`).fetchHistory();
    const args = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads;
    const [decoded] = await decodeArrayFromPayloads(loadDataConverter(dataConverter(testCodecKeys)), args);
    expect(decoded).toEqual({ site: first, maxUnavailable: 1, rollout: `rollout/${rolloutId}` });

    // A retried attempt (the worker died after some starts): every site is this rollout's, none busy, none doubled.
    expect(await mock.run((i: typeof input) => viaContext.startRolloutSites(i), input)).toEqual(started);
    expect((await env.client.workflow.getHandle(`site/${first}/patch`).describe()).runId).toBe(described.runId);
    // Another rollout's start of the same sites: busy, the running operations untouched.
    const other = { ...input, rolloutId: uniqueName('r2'), sites: input.sites.slice(0, 2) };
    expect(await mock.run((i: typeof input) => viaContext.startRolloutSites(i), other)).toEqual(
      Object.fromEntries(sites.slice(0, 2).map((s) => [s, { busy: `site/${s}/patch is already running` }])),
    );
    await Promise.all(sites.map((s) => env.client.workflow.getHandle(`site/${s}/patch`).terminate('test over')));
  });

  it('keeps at most startsInFlight starts waiting on the server (8 unless the rollout says otherwise)', async () => {
    const counting = countingStarts(env.client);
    const activities = createFleetActivities({ store, temporal: () => counting.client });
    const mock = new MockActivityEnvironment({ heartbeatTimeoutMs: 60_000 });
    const taskQueue = uniqueName('nobody');
    const startSites = async (startsInFlight?: number) => {
      const rolloutId = uniqueName('r');
      const sites = Array.from({ length: 20 }, (_, i) => uniqueName(`lane${i}`));
      counting.peak = 0;
      const started: RolloutSitesStarted = await mock.run(activities.startRolloutSites, {
        rollout: `rollout/${rolloutId}`,
        rolloutId,
        operation: 'patch' as const,
        taskQueue,
        sites: sites.map((site) => ({ site, input: { site, maxUnavailable: 1 } })),
        ...(startsInFlight !== undefined && { startsInFlight }),
      });
      const running = await Promise.all(
        sites.map(async (s) => (await env.client.workflow.getHandle(`site/${s}/patch`).describe()).status.name),
      );
      await Promise.all(sites.map((s) => env.client.workflow.getHandle(`site/${s}/patch`).terminate('test over')));
      return { peak: counting.peak, started: Object.keys(started).length, running };
    };
    const byDefault = await startSites();
    expect(byDefault).toEqual({ peak: 8, started: 20, running: Array(20).fill('RUNNING') });
    expect(await startSites(3)).toEqual({ peak: 3, started: 20, running: Array(20).fill('RUNNING') });
  });
});

/** The client with its workflow starts counted: how many wait on the server at once, at most. */
function countingStarts(client: Client): { client: Client; peak: number } {
  const counted = { client, peak: 0 };
  let inFlight = 0;
  const start: Client['workflow']['start'] = async (...args) => {
    counted.peak = Math.max(counted.peak, ++inFlight);
    try {
      return await client.workflow.start(...args);
    } finally {
      inFlight--;
    }
  };
  const workflow = new Proxy(client.workflow, {
    get: (target, prop) => (prop === 'start' ? start : (Reflect.get(target, prop, target) as unknown)),
  });
  counted.client = new Proxy(client, {
    get: (target, prop) => (prop === 'workflow' ? workflow : (Reflect.get(target, prop, target) as unknown)),
  });
  return counted;
}
