// Needs: the real Temporal dev server (tools cache). The rollout is the real fleetRollout with the real fleet activities
// over an embedded inventory; the site operations it starts are stand-ins (test/workflows/fixtures).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { OperationProgress, RolloutView } from '../../src/domain/operations.ts';
import { progress } from '../../src/workflows/progress.ts';
import { bearer, tokens } from '../support/api.ts';
import { startRolloutStack } from '../workflows/fixtures/rollout-fleet.ts';

let stack: Awaited<ReturnType<typeof startRolloutStack>>;

beforeAll(async () => {
  stack = await startRolloutStack();
  for (const name of ['api-1-600ms', 'api-2-600ms', 'api-3-600ms', 'api-4-600ms', 'api-5-600ms']) {
    await stack.store.sites.create({ name, labels: { tier: 'edge', batch: 'api' } }, {} as never);
  }
  for (const name of ['sch-1', 'sch-2']) {
    await stack.store.sites.create({ name, labels: { batch: 'schedule' } }, {} as never);
  }
});
afterAll(async () => {
  await stack.stop();
});

const post = (url: string, payload: object = {}, token = tokens.operator) =>
  stack.api.inject({ method: 'POST', url, headers: bearer(token), payload });
const get = (url: string) => stack.api.inject({ method: 'GET', url, headers: bearer(tokens.reader) });

type RolloutStatus = {
  status: string;
  progress?: OperationProgress;
  progressAsOf?: string;
  rollout?: RolloutView;
  failure?: string;
};

async function waitFor<T = RolloutStatus>(what: string, url: string, ok: (s: T) => boolean): Promise<T> {
  for (let i = 0; i < 300; i++) {
    const res = await get(url);
    if (res.statusCode === 200 && ok(res.json<T>())) return res.json<T>();
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`timed out waiting for ${what}: ${(await get(url)).body}`);
}

const upgrade = (strategy: object = {}, selector: object = { matchLabels: { batch: 'api' } }) => ({
  selector,
  operation: 'upgrade',
  kubernetesVersion: 'v1.35.0',
  strategy,
});

describe('rollouts through the API', () => {
  it('starts a rollout, reports its progress and settings, and takes validated changes while it runs', async () => {
    const res = await post('/v1/rollouts', upgrade({ maxConcurrency: 1 }));
    expect(res.statusCode).toBe(202);
    const { rolloutId, workflowId } = res.json<{ rolloutId: string; workflowId: string }>();
    expect(workflowId).toBe(`rollout/${rolloutId}`);
    const url = `/v1/rollouts/${rolloutId}`;
    const first = await waitFor('a running site', url, (s) => s.progress?.counts.running === 1);
    expect(first).toMatchObject({
      type: 'fleetRollout',
      operation: 'rollout',
      status: 'RUNNING',
      progress: { step: 'rolling out', counts: { total: 5, running: 1 } },
      rollout: { maxConcurrency: 1, failureLimit: 0, gate: 'open', paused: false, run: 1 },
    });

    expect((await post(`${url}/pause`, {}, tokens.reader)).statusCode).toBe(403);
    const paused = await post(`${url}/pause`, { reason: 'change freeze' });
    expect(paused.statusCode).toBe(200);
    expect(paused.json()).toMatchObject({ paused: true, pauseReason: 'change freeze' });
    const again = await post(`${url}/pause`);
    expect(again.statusCode).toBe(409);
    expect(again.json<{ message: string }>().message).toContain('already paused (change freeze)');
    expect((await post(`${url}/approve`)).json()).toMatchObject({
      error: 'Conflict',
      message: 'there is nothing to approve: the rollout is past its canaries',
    });

    const bad = await post(`${url}/concurrency`, { maxConcurrency: 0 });
    expect(bad.statusCode).toBe(400);
    expect(bad.json<{ issues: { field: string }[] }>().issues.map((i) => i.field)).toEqual(['body.maxConcurrency']);
    expect((await post(`${url}/concurrency`, { maxConcurrency: 3 })).json()).toMatchObject({ maxConcurrency: 3 });
    expect((await post(`${url}/resume`, { maxFailures: '120%' })).statusCode).toBe(400);
    expect((await post(`${url}/resume`)).json()).toMatchObject({ paused: false, maxConcurrency: 3 });
    const notPaused = await post(`${url}/resume`);
    expect(notPaused.statusCode).toBe(409);
    expect(notPaused.json<{ message: string }>().message).toBe('the rollout is not paused');

    const widened = await waitFor('three running', url, (s) => s.progress?.counts.running === 3);
    expect(widened.progress?.counts).toMatchObject({ total: 5, running: 3 });
    // The signal the API sent before updates existed still pauses a rollout.
    await stack.env.client.workflow.getHandle(workflowId).signal('pause');
    expect(await stack.env.client.workflow.getHandle(workflowId).query(progress)).toMatchObject({ paused: true });

    expect((await post(`${url}/cancel`)).statusCode).toBe(202);
    const cancelled = await waitFor('the cancellation', url, (s) => s.status === 'CANCELLED');
    expect(cancelled.progress).toMatchObject({ step: 'cancelled' });
    const late = await post(`${url}/pause`);
    expect(late.statusCode).toBe(409);
    expect(late.json<{ message: string }>().message).toBe(`rollout ${rolloutId} has ended (CANCELLED)`);
    expect((await post(`${url}/cancel`)).statusCode).toBe(409);

    await waitFor<{ items: { rolloutId: string; status: string }[] }>('the listing', '/v1/rollouts', (l) =>
      l.items.some((i) => i.rolloutId === rolloutId && i.status === 'CANCELLED'),
    );
  });

  it('runs a rollout to the end by site names, with canaries, and reports each site', async () => {
    const res = await post(
      '/v1/rollouts',
      upgrade({ canarySites: ['api-2-600ms'], maxConcurrency: 5 }, { names: ['api-1-600ms', 'api-2-600ms', 'gone'] }),
    );
    expect(res.statusCode).toBe(202);
    const { rolloutId } = res.json<{ rolloutId: string }>();
    const done = await waitFor('the end', `/v1/rollouts/${rolloutId}`, (s) => s.status === 'COMPLETED');
    expect(done.progress?.counts).toMatchObject({ total: 3, succeeded: 2, skipped: 1 });
    expect(done.progress?.items).toMatchObject({ gone: { state: 'skipped', detail: 'no such site' } });
  });

  it('refuses what it can tell is wrong before anything starts', async () => {
    const stray = await post('/v1/rollouts', upgrade({ canarySites: ['sch-1'] }));
    expect(stray.statusCode).toBe(422);
    expect(stray.json()).toMatchObject({
      field: 'strategy.canarySites.0',
      message: 'canary site "sch-1" is not among the selected sites',
    });
    const unknown = await post('/v1/rollouts', upgrade({ canarySites: ['nowhere'] }));
    expect(unknown.json()).toMatchObject({ message: 'canary site "nowhere" does not exist' });
    const noProfile = await post('/v1/rollouts', {
      selector: { matchLabels: {} },
      operation: 'patch',
      profile: { name: 'edge-base', version: '9.9.9' },
    });
    expect(noProfile.statusCode).toBe(422);
    expect(noProfile.json()).toMatchObject({ field: 'profile' });
    const bad = await post('/v1/rollouts', { selector: {}, operation: 'patch', strategy: { maxFailures: 'some' } });
    expect(bad.statusCode).toBe(400);
    expect(bad.json<{ issues: { field: string }[] }>().issues.map((i) => i.field)).toEqual(
      expect.arrayContaining(['body.selector', 'body.profile', 'body.strategy.maxFailures']),
    );
    expect((await get('/v1/rollouts/no-such-rollout')).statusCode).toBe(404);
    expect((await get('/v1/rollouts/..%2Fetc')).statusCode).toBe(400);
  });
});

describe('scheduled rollouts', () => {
  it('triggers a schedule now: its rollout runs and is listed as the last run; the overlap policy is skip', async () => {
    const created = await post('/v1/schedules', {
      name: 'nightly',
      cron: ['0 2 * * *'],
      rollout: upgrade({}, { matchLabels: { batch: 'schedule' } }),
    });
    expect(created.statusCode).toBe(201);
    expect(created.json()).toMatchObject({ recentRuns: [] });
    const described = await stack.env.client.schedule.getHandle('nightly').describe();
    expect(described.policies.overlap).toBe('SKIP');

    expect((await post('/v1/schedules/nightly/trigger')).statusCode).toBe(202);
    expect((await post('/v1/schedules/nowhere/trigger')).statusCode).toBe(404);
    const schedule = await waitFor<{ recentRuns: { rolloutId: string }[] }>(
      'the triggered run',
      '/v1/schedules/nightly',
      (s) => s.recentRuns.length > 0,
    );
    const { rolloutId } = schedule.recentRuns[0]!;
    expect(rolloutId).toMatch(/^schedule-nightly-/);
    const done = await waitFor('the scheduled rollout', `/v1/rollouts/${rolloutId}`, (s) => s.status === 'COMPLETED');
    expect(done.progress?.counts).toMatchObject({ total: 2, succeeded: 2 });
    expect(done.rollout).toMatchObject({ rolloutId });
    const children = [];
    for await (const w of stack.env.client.workflow.list({ query: `IcnRolloutId = '${rolloutId}'` })) {
      children.push(w.workflowId);
    }
    expect(children.sort()).toEqual(['site/sch-1/upgrade', 'site/sch-2/upgrade']);

    const listed = await get('/v1/schedules');
    expect(listed.json<{ items: unknown[] }>().items).toContainEqual({
      name: 'nightly',
      paused: false,
      nextRun: expect.any(String) as unknown,
      lastRun: { rolloutId, takenAt: expect.any(String) as unknown },
    });
    expect(
      (await stack.api.inject({ method: 'DELETE', url: '/v1/schedules/nightly', headers: bearer(tokens.operator) }))
        .statusCode,
    ).toBe(204);
  });
});

// Last: it stops the worker.
describe('progress when the rollout does not answer', () => {
  it('answers what the rollout last recorded in its memo, saying when', async () => {
    const res = await post('/v1/rollouts', upgrade({ maxConcurrency: 5 }));
    expect(res.statusCode).toBe(202);
    const url = `/v1/rollouts/${res.json<{ rolloutId: string }>().rolloutId}`;
    const done = await waitFor('the end', url, (s) => s.status === 'COMPLETED');
    // Answered by the rollout itself: no date.
    expect(done.progressAsOf).toBeUndefined();
    expect(done.progress?.counts).toMatchObject({ total: 5, succeeded: 5 });

    await stack.stopWorker();
    const asked = Date.now();
    const recorded = await get(url);
    expect(recorded.statusCode).toBe(200);
    const status = recorded.json<RolloutStatus>();
    // The query waited its 2 s for a worker; the memo answered.
    expect(Date.now() - asked).toBeGreaterThanOrEqual(1900);
    expect(status.status).toBe('COMPLETED');
    expect(status.progress).toEqual({
      step: done.progress?.step,
      counts: done.progress?.counts,
      paused: false,
      items: {},
    });
    expect(status.progressAsOf).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(Date.parse(status.progressAsOf ?? '')).toBeLessThanOrEqual(asked);
  });
});
