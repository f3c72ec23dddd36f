// Needs: the real Temporal dev server (tools cache). No worker runs the site workflows here: the test checks what the
// API asked Temporal for (ids, types, inputs, search attributes, signals, schedules), as the server records it.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { defaultPayloadConverter } from '@temporalio/common';
import proto from '@temporalio/proto';
import type { Store } from '../../src/store/index.ts';
import { AesGcmPayloadCodec } from '../../src/temporal/codec.ts';
import { testCodecKeys } from '../support/test-codec-keys.ts';
import { bearer, buildTestApi, tokens } from '../support/api.ts';
import { openTestStore } from '../support/store.ts';
import { startTemporal } from '../support/temporal.ts';

// A CommonJS package: Node's ESM loader sees only its default export.
const { EventType } = proto.temporal.api.enums.v1;

let env: TestWorkflowEnvironment;
let store: Store;
let api: Awaited<ReturnType<typeof buildTestApi>>;

beforeAll(async () => {
  env = await startTemporal();
  store = await openTestStore('pglite');
  api = await buildTestApi({ store, temporal: env.client, env: { ICN_TASK_QUEUE: 'no-worker-here' } });
  await store.sites.create({ name: 'edge-01', labels: { tier: 'edge' } }, {} as never);
  await store.sites.create({ name: 'edge-02' }, {} as never);
});
afterAll(async () => {
  await api.close();
  await store.close();
  await env.teardown();
});

const post = (url: string, payload: object = {}, token = tokens.operator) =>
  api.inject({ method: 'POST', url, headers: bearer(token), payload });
const get = (url: string) => api.inject({ method: 'GET', url, headers: bearer(tokens.reader) });

async function eventTypes(workflowId: string): Promise<(string | undefined)[]> {
  const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
  return (history.events ?? []).map((e) => EventType[e.eventType ?? 0]);
}

describe('site operations', () => {
  it('starts an install under its business key, with its input and search attributes', async () => {
    expect((await post('/v1/sites/edge-01/install', {}, tokens.reader)).statusCode).toBe(403);
    const res = await post('/v1/sites/edge-01/install', { keepOnFailure: true });
    expect(res.statusCode).toBe(202);
    expect(res.json()).toMatchObject({ workflowId: 'site/edge-01/install' });
    const status = await get('/v1/sites/edge-01/operations/install');
    expect(status.json()).toMatchObject({
      type: 'siteInstall',
      status: 'RUNNING',
      site: 'edge-01',
      operation: 'install',
    });
    const handle = env.client.workflow.getHandle('site/edge-01/install');
    const started = (await handle.fetchHistory()).events?.[0]?.workflowExecutionStartedEventAttributes;
    const [clear] = await new AesGcmPayloadCodec(testCodecKeys).decode(started?.input?.payloads ?? []);
    expect(defaultPayloadConverter.fromPayload(clear!)).toEqual({ site: 'edge-01', keepOnFailure: true });
    expect(started?.searchAttributes?.indexedFields).toHaveProperty('IcnSite');
    expect(started?.taskQueue?.name).toBe('no-worker-here');
  });

  it('refuses a second operation on a busy site, and operations on unknown sites or profiles', async () => {
    const busy = await post('/v1/sites/edge-01/upgrade', { kubernetesVersion: 'v1.35.0' });
    expect(busy.statusCode).toBe(409);
    expect(busy.json<{ message: string }>().message).toContain('site/edge-01/install');
    expect((await post('/v1/sites/nowhere/install')).statusCode).toBe(404);
    const noProfile = await post('/v1/sites/edge-02/patch', { profile: { name: 'edge-base', version: '9.9.9' } });
    expect(noProfile.statusCode).toBe(422);
    expect(noProfile.json()).toMatchObject({ field: 'profile' });
    expect((await post('/v1/sites/edge-02/upgrade', { kubernetesVersion: 'latest' })).statusCode).toBe(400);
    const quickTakeover = await post('/v1/sites/edge-02/patch', {
      profile: { name: 'edge-base', version: '9.9.9' },
      hostTakeoverSeconds: 5,
    });
    expect(quickTakeover.statusCode).toBe(400);
    expect(quickTakeover.json<{ message: string }>().message).toMatch(/^body\.hostTakeoverSeconds: .*30/);
    expect((await get('/v1/sites/edge-02/operations/patch')).statusCode).toBe(404);
  });

  it('lists a site operations from visibility and records a cancellation', async () => {
    let items: { workflowId: string }[] = [];
    for (let i = 0; i < 50 && items.length === 0; i++) {
      const listed = await get('/v1/sites/edge-01/operations');
      if (listed.statusCode !== 200) throw new Error(listed.body);
      items = listed.json<{ items: { workflowId: string }[] }>().items;
      if (items.length === 0) await new Promise((r) => setTimeout(r, 200));
    }
    expect(items.map((i) => i.workflowId)).toEqual(['site/edge-01/install']);
    expect((await post('/v1/sites/edge-01/operations/install/cancel')).statusCode).toBe(202);
    expect(await eventTypes('site/edge-01/install')).toContain('EVENT_TYPE_WORKFLOW_EXECUTION_CANCEL_REQUESTED');
  });
});

// Rollouts (updates, progress, schedules that fire) are in rollouts.test.ts, with a worker that runs them.

describe('scheduled rollouts', () => {
  const schedule = {
    name: 'weekly-patch',
    cron: ['0 2 * * 6'],
    rollout: { selector: { matchLabels: { tier: 'edge' } }, operation: 'upgrade', kubernetesVersion: 'v1.35.0' },
  };

  it('creates, pauses, lists and deletes a Temporal Schedule', async () => {
    const created = await post('/v1/schedules', schedule);
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ name: 'weekly-patch', cron: ['0 2 * * 6'], paused: false });
    expect(created.json<{ nextRuns: string[] }>().nextRuns.length).toBeGreaterThan(0);
    expect(new Date(created.json<{ nextRuns: string[] }>().nextRuns[0]!).getUTCDay()).toBe(6);
    expect((await post('/v1/schedules', schedule)).statusCode).toBe(409);

    const paused = await post('/v1/schedules/weekly-patch/pause', { note: 'freeze for the holidays' });
    expect(paused.json()).toMatchObject({ paused: true, note: 'freeze for the holidays' });
    const described = await env.client.schedule.getHandle('weekly-patch').describe();
    expect(described.state.paused).toBe(true);
    expect(described.action).toMatchObject({ workflowType: 'fleetRollout' });

    expect(
      (await api.inject({ method: 'DELETE', url: '/v1/schedules/weekly-patch', headers: bearer(tokens.operator) }))
        .statusCode,
    ).toBe(204);
    expect((await get('/v1/schedules/weekly-patch')).statusCode).toBe(404);
  });
});

describe('metrics', () => {
  it('counts requests by route template', async () => {
    const res = await api.inject({ method: 'GET', url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.body).toMatch(
      /icn_api_requests_total\{method="POST",route="\/v1\/sites\/:name\/install",status="202"\} 1/,
    );
  });
});
