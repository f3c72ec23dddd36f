// Needs: the real Temporal dev server (tools cache). The rollout is the real fleetRollout; its children are stand-ins
// registered under the site operations' names (fixtures/site-operation-fixture.ts), its activities a fleet in memory.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import {
  WorkflowFailedError,
  type WorkflowHandle,
  type WorkflowHandleWithFirstExecutionRunId,
  WorkflowUpdateFailedError,
} from '@temporalio/client';
import type { SearchAttributePair } from '@temporalio/common';
import type { History } from '@temporalio/common/lib/proto-utils.js';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { decodeFromPayloadsAtIndex, loadDataConverter } from '@temporalio/common/lib/internal-non-workflow/index.js';
import { rolloutSiteEndedSignal, rolloutSitesEndedSignal } from '../../src/domain/keys.ts';
import type {
  FleetRolloutInput,
  OperationProgress,
  RolloutRequest,
  RolloutSiteEnded,
} from '../../src/domain/operations.ts';
import { dataConverter } from '../../src/temporal/connection.ts';
import { testCodecKeys } from '../support/test-codec-keys.ts';
import { RolloutRequest as RolloutRequestSchema } from '../../src/domain/operations.ts';
import {
  approveUpdate,
  type fleetRollout,
  pauseUpdate,
  resumeUpdate,
  rolloutView,
  setMaxConcurrencyUpdate,
} from '../../src/workflows/fleet-rollout.ts';
import { progress } from '../../src/workflows/progress.ts';
import { failureLimit, localMinutes, minutesUntilOpen, msUntilWindow } from '../../src/workflows/rollout-window.ts';
import { operationAttribute, rolloutAttribute } from '../../src/temporal/search-attributes.ts';
import { recordHistory } from '../support/histories.ts';
import { startTemporal, uniqueName } from '../support/temporal.ts';
import { createRolloutWorker, type FixtureSite, FixtureFleet } from './fixtures/rollout-fleet.ts';

let env: TestWorkflowEnvironment;
let worker: Worker;
let running: Promise<void>;
const fleet = new FixtureFleet();
const taskQueue = uniqueName('rollout');

beforeAll(async () => {
  env = await startTemporal();
  worker = await createRolloutWorker(env, taskQueue, fleet.activities());
  running = worker.run();
});
afterAll(async () => {
  worker.shutdown();
  await running;
  await env.teardown();
});

/** Sites of one test, under a label of their own so that each rollout selects only its test's sites. */
function sites(names: string[], extra: Partial<FixtureSite> = {}): Record<string, string> {
  const key = uniqueName('t');
  fleet.add(...names.map((name) => ({ name, labels: { test: key }, ...extra })));
  return { test: key };
}

type RolloutHandle = WorkflowHandleWithFirstExecutionRunId<typeof fleetRollout>;

async function startRollout(
  request: unknown,
  typedSearchAttributes: SearchAttributePair[] = [],
  extra: Partial<FleetRolloutInput> = {},
): Promise<RolloutHandle> {
  const rolloutId = uniqueName('r');
  return env.client.workflow.start<typeof fleetRollout>('fleetRollout', {
    taskQueue,
    workflowId: `rollout/${rolloutId}`,
    typedSearchAttributes,
    args: [{ rolloutId, request: RolloutRequestSchema.parse(request) satisfies RolloutRequest, ...extra }],
  });
}

const patch = (matchLabels: Record<string, string>, strategy: object = {}) => ({
  selector: { matchLabels },
  operation: 'patch',
  profile: { name: 'edge-base', version: '1.1.0' },
  strategy,
});

async function waitFor<T>(what: string, read: () => Promise<T>, ok: (value: T) => boolean, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await read();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

const progressOf = (handle: WorkflowHandle) => () => handle.query<OperationProgress>(progress);

interface Span {
  workflowId: string;
  from: number;
  to?: number;
  outcome?: string;
}

const ms = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
  Number(t?.seconds ?? 0) * 1000 + Math.floor((t?.nanos ?? 0) / 1e6);

const converter = loadDataConverter(dataConverter(testCodecKeys));

/**
 * Each child as the rollout saw it, from its own history: initiated, then ended: its report (the rollout's slot frees
 * then; the child closes a moment later) or its close (or refused), whichever came first.
 */
async function childSpans(handle: WorkflowHandle): Promise<Span[]> {
  const history = await handle.fetchHistory();
  const spans = new Map<string, Span>();
  const reported = new Map<string, number>();
  for (const e of history.events ?? []) {
    const at = ms(e.eventTime);
    const signal = e.workflowExecutionSignaledEventAttributes;
    if (signal?.signalName === rolloutSiteEndedSignal) {
      const ended = await decodeFromPayloadsAtIndex<RolloutSiteEnded>(converter, 0, signal.input?.payloads);
      reported.set(ended.site, at);
    }
    if (signal?.signalName === rolloutSitesEndedSignal) {
      const ended = await decodeFromPayloadsAtIndex<RolloutSiteEnded[]>(converter, 0, signal.input?.payloads);
      for (const { site } of ended) reported.set(site, at);
    }
    const init = e.startChildWorkflowExecutionInitiatedEventAttributes;
    if (init) spans.set(String(e.eventId), { workflowId: init.workflowId ?? '', from: at });
    const closes: [string, { initiatedEventId?: unknown } | null | undefined][] = [
      ['completed', e.childWorkflowExecutionCompletedEventAttributes],
      ['failed', e.childWorkflowExecutionFailedEventAttributes],
      ['cancelled', e.childWorkflowExecutionCanceledEventAttributes],
      ['terminated', e.childWorkflowExecutionTerminatedEventAttributes],
      ['refused', e.startChildWorkflowExecutionFailedEventAttributes],
    ];
    for (const [outcome, attrs] of closes) {
      const span = attrs ? spans.get(String(attrs.initiatedEventId)) : undefined;
      if (span) Object.assign(span, { to: at, outcome });
    }
  }
  for (const span of spans.values()) {
    const report = reported.get(span.workflowId.split('/')[1] ?? '');
    if (report !== undefined && (span.to === undefined || report < span.to)) span.to = report;
  }
  return [...spans.values()];
}

/** The most children open at once, from the rollout's own history. */
function maxOverlap(spans: Span[]): number {
  const edges = spans.flatMap((s): [number, number][] => [
    [s.from, 1],
    [s.to ?? Infinity, -1],
  ]);
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let open = 0;
  let most = 0;
  for (const [, d] of edges) {
    open += d;
    most = Math.max(most, open);
  }
  return most;
}

async function updateRejection(run: () => Promise<unknown>): Promise<string> {
  const err = await run().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(WorkflowUpdateFailedError);
  return (err as WorkflowUpdateFailedError).cause?.message ?? '';
}

describe('maintenance windows and failure budgets (pure)', () => {
  it('reads the wall clock in the site time zone and waits for the window to open', () => {
    const instant = new Date('2025-01-15T01:30:20Z');
    expect(localMinutes(instant, 'UTC')).toBe(90);
    expect(localMinutes(instant, 'Asia/Tokyo')).toBe(10 * 60 + 30);
    expect(localMinutes(instant, 'America/New_York')).toBe(20 * 60 + 30);
    const night = { start: '22:00', end: '04:00' };
    expect(minutesUntilOpen(night, 23 * 60)).toBe(0);
    expect(minutesUntilOpen(night, 3 * 60)).toBe(0);
    expect(minutesUntilOpen(night, 4 * 60)).toBe(18 * 60);
    expect(minutesUntilOpen({ start: '02:00', end: '05:00' }, 90)).toBe(30);
    // 01:30:20 UTC in a 02:00–05:00 window: 29 min 40 s to go.
    expect(msUntilWindow({ start: '02:00', end: '05:00' }, 'UTC', instant)).toBe(29 * 60_000 + 40_000);
    expect(msUntilWindow({ start: '10:00', end: '11:00' }, 'Asia/Tokyo', instant)).toBe(0);
    expect(msUntilWindow(undefined, 'Asia/Tokyo', instant)).toBe(0);
  });

  it('takes maxFailures as a count or a share of the selected sites', () => {
    expect(failureLimit(3, 100)).toBe(3);
    expect(failureLimit('10%', 25)).toBe(2);
    expect(failureLimit('0.5%', 1000)).toBe(5);
    expect(RolloutRequestSchema.safeParse(patch({}, { maxFailures: '120%' })).success).toBe(false);
    expect(RolloutRequestSchema.safeParse(patch({}, { canaryApproval: true })).success).toBe(false);
  });
});

describe('fleetRollout', () => {
  it('runs the canaries first, soaks them, then the rest in a window of maxConcurrency', async () => {
    const names = ['can-a-300ms', 'can-b-300ms', ...[1, 2, 3, 4, 5, 6].map((i) => `rest-${i}-300ms`)];
    const labels = sites(names);
    const started = Date.now();
    const handle = await startRollout(
      patch(labels, { canarySites: ['can-b-300ms', 'can-a-300ms'], canarySoakSeconds: 1, maxConcurrency: 2 }),
    );
    const soaking = await waitFor('the soak', progressOf(handle), (p) => p.step.startsWith('canaries soaking'));
    expect(soaking.counts).toMatchObject({ succeeded: 2, pending: 6, running: 0 });
    const result = await handle.result();
    console.log(`canary rollout: ${Date.now() - started} ms`);
    expect(result).toMatchObject({ counts: { total: 8, succeeded: 8, failed: 0, pending: 0 } });

    const spans = await childSpans(handle);
    const canaries = spans.filter((s) => s.workflowId.includes('/can-'));
    const rest = spans.filter((s) => s.workflowId.includes('/rest-'));
    expect(canaries.map((s) => s.workflowId)).toEqual(['site/can-b-300ms/patch', 'site/can-a-300ms/patch']);
    const canariesDone = Math.max(...canaries.map((s) => s.to ?? Infinity));
    const restStarted = Math.min(...rest.map((s) => s.from));
    expect(restStarted - canariesDone).toBeGreaterThanOrEqual(1000);
    expect(maxOverlap(rest)).toBe(2);
    expect(await handle.query(progress)).toMatchObject({ step: 'done' });
    // What the API answers when the query is not answered in time: the last progress recorded, and when.
    const { memo } = await handle.describe();
    expect(memo?.progress).toEqual({
      step: 'done',
      counts: result.counts,
      paused: false,
      at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/) as unknown,
    });
    recordHistory(env, handle.workflowId, 'fleet-rollout');
  });

  it("hands a patch's host takeover to each site's patch, and leaves it out when the rollout does not set it", async () => {
    const childInput = async (site: string) => {
      const history = await env.client.workflow.getHandle(`site/${site}/patch`).fetchHistory();
      const started = history.events?.[0]?.workflowExecutionStartedEventAttributes;
      return decodeFromPayloadsAtIndex<Record<string, unknown>>(converter, 0, started?.input?.payloads);
    };
    const longer = await startRollout({ ...patch(sites(['hto-long-1'])), hostTakeoverSeconds: 600 });
    expect(await longer.result()).toMatchObject({ counts: { succeeded: 1 } });
    expect(await childInput('hto-long-1')).toMatchObject({ maxUnavailable: 1, hostTakeoverSeconds: 600 });
    const byDefault = await startRollout(patch(sites(['hto-default-1'])));
    expect(await byDefault.result()).toMatchObject({ counts: { succeeded: 1 } });
    expect(await childInput('hto-default-1')).not.toHaveProperty('hostTakeoverSeconds');
  });

  it('waits for an operator to approve the canaries; an early approval is refused', async () => {
    const labels = sites(['appr-can-500ms', 'appr-1', 'appr-2']);
    const handle = await startRollout(patch(labels, { canarySites: ['appr-can-500ms'], canaryApproval: true }));
    expect(await updateRejection(() => handle.executeUpdate(approveUpdate))).toContain('canaries have not finished');
    await waitFor('the approval gate', progressOf(handle), (p) => p.step.includes('approve'));
    expect((await handle.query(progress)).counts).toMatchObject({ succeeded: 1, pending: 2 });
    expect(await handle.executeUpdate(approveUpdate)).toMatchObject({ gate: 'open' });
    expect(await handle.result()).toMatchObject({ counts: { succeeded: 3 } });
  });

  it('pauses past the failure budget, names the failed site, and goes on when resumed', async () => {
    const labels = sites(['fb-1-200ms', 'fb-2-fail', 'fb-3', 'fb-4']);
    const handle = await startRollout(patch(labels, { maxConcurrency: 1, maxFailures: 0 }));
    const paused = await waitFor('the pause', progressOf(handle), (p) => p.paused === true);
    expect(paused.step).toMatch(/^paused: 1 sites failed, more than maxFailures \(0\)/);
    expect(paused.items['fb-2-fail']).toEqual({ state: 'failed', detail: 'patch of fb-2-fail broke (fixture)' });
    expect(paused.counts).toMatchObject({ succeeded: 1, failed: 1, pending: 2, running: 0 });
    expect(await updateRejection(() => handle.executeUpdate(pauseUpdate, { args: [{}] }))).toContain('already paused');
    expect(await handle.executeUpdate(resumeUpdate, { args: [{}] })).toMatchObject({ paused: false, tolerated: 1 });
    expect(await handle.result()).toMatchObject({
      counts: { succeeded: 3, failed: 1 },
      failures: [{ site: 'fb-2-fail', reason: 'patch of fb-2-fail broke (fixture)' }],
    });
    recordHistory(env, handle.workflowId, 'fleet-rollout-paused');
  });

  it('stops past the failure budget when told to, and the rollout fails', async () => {
    const labels = sites(['st-1-fail', 'st-2', 'st-3']);
    const handle = await startRollout(patch(labels, { maxConcurrency: 1, onFailureLimit: 'stop' }));
    const err = await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(WorkflowFailedError);
    expect((err as WorkflowFailedError).cause?.message).toMatch(/rollout stopped: 1 sites failed.*2 skipped/);
    expect(await handle.query(progress)).toMatchObject({ counts: { failed: 1, skipped: 2 } });
  });

  it('pauses, resumes and is cancelled mid-run: running sites finish on pause and are cancelled with the rollout', async () => {
    const labels = sites(['pc-1-700ms', 'pc-2-700ms', 'pc-3-700ms', 'pc-4-hang', 'pc-5-hang', 'pc-6']);
    const handle = await startRollout(patch(labels, { maxConcurrency: 2 }));
    await waitFor('two running', progressOf(handle), (p) => p.counts.running === 2);
    expect(await handle.executeUpdate(pauseUpdate, { args: [{ reason: 'checking dashboards' }] })).toMatchObject({
      paused: true,
      pauseReason: 'checking dashboards',
    });
    const held = await waitFor('the running sites to end', progressOf(handle), (p) => p.counts.running === 0);
    expect(held).toMatchObject({ paused: true, step: 'paused: checking dashboards' });
    expect(held.counts).toMatchObject({ succeeded: 2, pending: 4 });
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect((await handle.query(progress)).counts).toMatchObject({ running: 0, pending: 4 });

    expect(await updateRejection(() => handle.executeUpdate(resumeUpdate, { args: [{ maxFailures: -1 }] }))).toContain(
      'maxFailures must be',
    );
    await handle.executeUpdate(resumeUpdate, { args: [{}] });
    expect(await updateRejection(() => handle.executeUpdate(resumeUpdate, { args: [{}] }))).toContain('not paused');
    // A child counts as running once its start is asked for, and shows "running" once the server said it started:
    // under load the two can be a moment apart, so the wait is for both.
    const hanging = await waitFor(
      'the hanging sites',
      progressOf(handle),
      (p) =>
        p.counts.running === 2 &&
        p.counts.succeeded === 3 &&
        Object.values(p.items).filter((i) => i.state === 'running').length === 2,
    );
    expect(Object.keys(hanging.items).filter((s) => hanging.items[s]?.state === 'running')).toEqual([
      'pc-4-hang',
      'pc-5-hang',
    ]);
    await handle.cancel();
    const err = await handle.result().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as WorkflowFailedError).cause?.name).toBe('CancelledFailure');
    expect((await handle.describe()).status.name).toBe('CANCELLED');
    for (const site of ['pc-4-hang', 'pc-5-hang']) {
      expect((await env.client.workflow.getHandle(`site/${site}/patch`).describe()).status.name).toBe('CANCELLED');
    }
    expect(await handle.query(progress)).toMatchObject({
      step: 'cancelled',
      counts: { succeeded: 3, cancelled: 2, skipped: 1, running: 0, pending: 0 },
    });
  });

  it('honours a maxConcurrency changed while it runs, and refuses a bad one', async () => {
    const names = Array.from({ length: 14 }, (_, i) => `mc-${String(i).padStart(2, '0')}-400ms`);
    const labels = sites(names);
    const handle = await startRollout(patch(labels, { maxConcurrency: 1 }));
    await waitFor('two sites done', progressOf(handle), (p) => (p.counts.succeeded ?? 0) >= 2);
    expect(
      await updateRejection(() => handle.executeUpdate(setMaxConcurrencyUpdate, { args: [{ maxConcurrency: 0 }] })),
    ).toContain('maxConcurrency must be a whole number from 1 to 10000');
    const changedAt = Date.now();
    expect(await handle.executeUpdate(setMaxConcurrencyUpdate, { args: [{ maxConcurrency: 4 }] })).toMatchObject({
      maxConcurrency: 4,
    });
    await handle.result();
    const spans = await childSpans(handle);
    const before = spans.filter((s) => s.from < changedAt - 50);
    const after = spans.filter((s) => s.from > changedAt + 50);
    expect(maxOverlap(before)).toBe(1);
    expect(maxOverlap(after)).toBe(4);
    expect(await handle.query(rolloutView)).toMatchObject({ maxConcurrency: 4 });
  });

  it('keeps maxConcurrency sites running though one run may have only a few pending children: it continues as new, and sites of earlier runs report to the current one', async () => {
    const labels = sites(Array.from({ length: 8 }, (_, i) => `lim-${i}-4000ms`));
    const handle = await startRollout(patch(labels, { maxConcurrency: 8 }), [], { limits: { maxPendingChildren: 3 } });
    await waitFor('all eight running', progressOf(handle), (p) => p.counts.running === 8, 10_000);
    expect(await handle.result()).toMatchObject({ counts: { total: 8, succeeded: 8, failed: 0, running: 0 } });
    expect((await handle.query(rolloutView)).run).toBeGreaterThanOrEqual(3);
    // The server's limit holds per run: the first run asked for three children, no more.
    const first = env.client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId);
    expect(maxOverlap(await childSpans(first))).toBe(3);
    expect((await childSpans(first)).length).toBe(3);
    // A later run: sites of earlier runs carried in, their reports signalled in.
    recordHistory(env, handle.workflowId, 'fleet-rollout-continued');
  });

  it('starts a turn of many sites in bulk, not as children: they run and report, one busy is reported, the others are cancelled with the rollout', async () => {
    const labels = sites(['bk-1-hang', 'bk-2-hang', 'bk-3-300ms', 'bk-4-hang']);
    const holder = await env.client.workflow.start('sitePatch', {
      taskQueue,
      workflowId: 'site/bk-4-hang/patch',
      args: [{ site: 'bk-4-hang' }],
    });
    const handle = await startRollout(patch(labels, { maxConcurrency: 4, maxFailures: 0 }), [], {
      limits: { bulkStartFrom: 2 },
    });
    const seen = await waitFor(
      'two hanging, one done, one busy',
      progressOf(handle),
      (p) => p.counts.running === 2 && p.counts.succeeded === 1 && p.counts.busy === 1,
    );
    expect(seen.items['bk-4-hang']).toEqual({ state: 'busy', detail: 'site/bk-4-hang/patch is already running' });
    expect(await childSpans(handle)).toEqual([]);
    const history = await handle.fetchHistory();
    const bulkStarts = (history.events ?? []).filter(
      (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'startRolloutSites',
    );
    expect(bulkStarts).toHaveLength(1);
    for (const site of ['bk-1-hang', 'bk-2-hang']) {
      const described = await env.client.workflow.getHandle(`site/${site}/patch`).describe();
      expect(described.typedSearchAttributes.get(rolloutAttribute)).toBe(handle.workflowId.slice('rollout/'.length));
      // A site's task may take 30 s on a busy worker before it is given to another (siteOperationTaskTimeout).
      expect(Number(described.raw.executionConfig?.defaultWorkflowTaskTimeout?.seconds)).toBe(30);
    }
    await handle.cancel();
    await expect(handle.result()).rejects.toThrow();
    for (const site of ['bk-1-hang', 'bk-2-hang']) {
      expect((await env.client.workflow.getHandle(`site/${site}/patch`).describe()).status.name).toBe('CANCELLED');
    }
    expect((await holder.describe()).status.name).toBe('RUNNING');
    expect(await handle.query(progress)).toMatchObject({
      step: 'cancelled',
      counts: { succeeded: 1, busy: 1, cancelled: 2, running: 0, pending: 0 },
    });
    await holder.cancel();
    recordHistory(env, handle.workflowId, 'fleet-rollout-bulk');
  });

  it('ends a site of an earlier run that was terminated (it never reports) and cancels those still running with the rollout', async () => {
    const labels = sites(['cx-1-hang', 'cx-2-hang', 'cx-3-hang', 'cx-4-hang', 'cx-5-300ms']);
    const handle = await startRollout(patch(labels, { maxConcurrency: 5, maxFailures: 5 }), [], {
      limits: { maxPendingChildren: 2, unreportedSweepSeconds: 1 },
    });
    await waitFor(
      'four hanging, one done',
      progressOf(handle),
      (p) => p.counts.running === 4 && p.counts.succeeded === 1,
    );
    expect((await handle.query(rolloutView)).run).toBe(3);
    await env.client.workflow.getHandle('site/cx-1-hang/patch').terminate('operator gave up on it');
    const swept = await waitFor('the sweep', progressOf(handle), (p) => p.counts.failed === 1);
    expect(swept.items['cx-1-hang']).toEqual({ state: 'failed', detail: 'site/cx-1-hang/patch was terminated' });
    await handle.cancel();
    await expect(handle.result()).rejects.toThrow();
    for (const site of ['cx-2-hang', 'cx-3-hang', 'cx-4-hang']) {
      expect((await env.client.workflow.getHandle(`site/${site}/patch`).describe()).status.name).toBe('CANCELLED');
    }
    expect(await handle.query(progress)).toMatchObject({
      step: 'cancelled',
      counts: { succeeded: 1, failed: 1, cancelled: 3, running: 0, pending: 0 },
    });
  });

  it('reports a site busy with the same operation or another, without doubling it or spending the budget', async () => {
    const labels = sites(['busy-hang', 'busy-other', 'busy-free']);
    fleet.busyElsewhere.set('busy-other', 'busy with install (site/busy-other/install)');
    const holder = await env.client.workflow.start('sitePatch', {
      taskQueue,
      workflowId: 'site/busy-hang/patch',
      args: [{ site: 'busy-hang' }],
    });
    const handle = await startRollout(patch(labels, { maxFailures: 0 }));
    const result = await handle.result();
    expect(result).toMatchObject({
      counts: { total: 3, succeeded: 1, busy: 2, failed: 0 },
      busy: expect.arrayContaining([
        { site: 'busy-other', reason: 'busy with install (site/busy-other/install)' },
        { site: 'busy-hang', reason: 'site/busy-hang/patch is already running' },
      ]) as unknown,
    });
    expect((await holder.describe()).runId).toBe(holder.firstExecutionRunId);
    expect((await holder.describe()).status.name).toBe('RUNNING');
    await holder.cancel();
  });

  it('starts no site outside its maintenance window, read in the site time zone', async () => {
    const hhmm = (d: Date) => d.toISOString().slice(11, 16);
    const now = Date.now();
    const window = { start: hhmm(new Date(now - 30 * 60_000)), end: hhmm(new Date(now + 30 * 60_000)) };
    const key = uniqueName('t');
    fleet.add(
      { name: 'mw-utc', labels: { test: key }, timeZone: 'UTC' },
      { name: 'mw-default', labels: { test: key } },
      { name: 'mw-tokyo', labels: { test: key }, timeZone: 'Asia/Tokyo' },
    );
    const handle = await startRollout(patch({ test: key }, { maintenanceWindow: window }));
    const waiting = await waitFor('the window wait', progressOf(handle), (p) => p.step.startsWith('waiting for'));
    expect(waiting.step).toMatch(/maintenance windows: 1\+ sites outside theirs, the next opens in \d+ min/);
    expect(waiting.counts).toMatchObject({ succeeded: 2, pending: 1, running: 0 });
    await handle.cancel();
    await expect(handle.result()).rejects.toThrow();
    expect(await handle.query(progress)).toMatchObject({
      items: { 'mw-tokyo': { state: 'skipped', detail: 'the rollout was cancelled' } },
    });
    expect((await childSpans(handle)).map((s) => s.workflowId).sort()).toEqual([
      'site/mw-default/patch',
      'site/mw-utc/patch',
    ]);
  });

  it('cancels a site past its timeout, counts it failed and goes on', async () => {
    const labels = sites(['to-1-hang', 'to-2']);
    const handle = await startRollout(patch(labels, { siteTimeoutSeconds: 1, maxFailures: 1 }));
    expect(await handle.result()).toMatchObject({
      counts: { succeeded: 1, failed: 1 },
      failures: [{ site: 'to-1-hang', reason: 'timed out after 1 s' }],
    });
    // The rollout counts the site failed when it asks for the cancel; the site closes once its own task has run.
    const site = env.client.workflow.getHandle('site/to-1-hang/patch');
    const closed = await waitFor(
      'the timed-out site to close',
      async () => (await site.describe()).status.name,
      (status) => status !== 'RUNNING',
    );
    expect(closed).toBe('CANCELLED');
  });

  it('rolls out to 2,000 sites, continuing as new on the way, and ends with all 2,000 succeeded', async () => {
    const names = Array.from({ length: 2000 }, (_, i) => `bulk-${String(i).padStart(4, '0')}`);
    const labels = sites(names);
    const pagesBefore = fleet.pagesServed;
    const started = Date.now();
    const handle = await startRollout(
      {
        selector: { matchLabels: labels },
        operation: 'upgrade',
        kubernetesVersion: 'v1.35.0',
        strategy: { maxConcurrency: 200 },
      },
      [{ key: operationAttribute, value: 'rollout' }],
      // Sites' ends arrive batched: 2,000 sites fill a few hundred events, not the server's suggested 4,096.
      { limits: { maxEventsPerRun: 300 } },
    );
    // More sites run than an answer lists: the counts stay exact, the list names the 100 longest running.
    const busy = await waitFor('more than 100 sites running', progressOf(handle), (p) => (p.counts.running ?? 0) > 100);
    const listed = Object.values(busy.items).filter((i) => i.state === 'running' || i.state === 'starting');
    expect(listed).toHaveLength(100);
    const result = await handle.result();
    const seconds = (Date.now() - started) / 1000;
    console.log(`2,000-site rollout: ${seconds.toFixed(1)} s`);
    expect(result.counts).toMatchObject({ total: 2000, succeeded: 2000, failed: 0, busy: 0, pending: 0 });
    expect(fleet.pagesServed - pagesBefore).toBe(2);
    const first = await env.client.workflow.getHandle(handle.workflowId, handle.firstExecutionRunId).describe();
    expect(first.status.name).toBe('CONTINUED_AS_NEW');
    const view = await handle.query(rolloutView);
    expect(view.run).toBeGreaterThanOrEqual(2);
    // The sites' ends reached the rollout batched (src/activities/site-outcome-reports.ts): fewer signals than sites,
    // counted over every run's history.
    let signals = 0;
    const reported = new Set<string>();
    for (let runId: string | undefined = handle.firstExecutionRunId; runId !== undefined;) {
      const history: History = await env.client.workflow.getHandle(handle.workflowId, runId).fetchHistory();
      const events = history.events ?? [];
      for (const e of events) {
        const signal = e.workflowExecutionSignaledEventAttributes;
        if (signal?.signalName !== rolloutSitesEndedSignal) continue;
        signals++;
        const ended = await decodeFromPayloadsAtIndex<RolloutSiteEnded[]>(converter, 0, signal.input?.payloads);
        for (const { site } of ended) reported.add(site);
      }
      runId = events.at(-1)?.workflowExecutionContinuedAsNewEventAttributes?.newExecutionRunId ?? undefined;
    }
    expect(reported.size).toBe(2000);
    expect(signals).toBeLessThan(2000);
    const last = await handle.describe();
    expect(last.typedSearchAttributes.get(operationAttribute)).toBe('rollout');
    expect(last.historyLength).toBeLessThan(10_000);
  }, 300_000);
});
