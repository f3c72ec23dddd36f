// Needs: the real Temporal dev server (test/support/temporal.ts). The site activities are mocked; the worker's metrics
// endpoint (ICN_WORKER_METRICS_PORT, served by the SDK's core) is scraped over HTTP and its logs are captured.
import { readFileSync } from 'node:fs';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Context } from '@temporalio/activity';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type Worker } from '@temporalio/worker';
import { pino } from 'pino';
import { freePort } from '../../deploy/dev/lab/processes.ts';
import { RolloutRequest } from '../../src/domain/operations.ts';
import { redactedPaths } from '../../src/observability/logger.ts';
import { metricNames } from '../../src/observability/metric-names.ts';
import { installRuntimeLogger } from '../../src/worker/runtime-logger.ts';
import { createWorker, workflowInterceptorModules, workflowsPath } from '../../src/worker/worker.ts';
import { fleetRollout, siteInstall } from '../../src/workflows/index.ts';
import type { FleetActivities } from '../../src/workflows/rollout-activities.ts';
import type { ProvisioningActivities } from '../../src/workflows/site-activities.ts';
import { mockActivities, plan } from '../support/site-activities-mock.ts';
import { testCodecKeys } from '../support/test-codec-keys.ts';

const dashboardPath = new URL('../../deploy/grafana/fleet-dashboard.json', import.meta.url);

/** The worker's pino records, as JSON objects. */
const records: Record<string, unknown>[] = [];
const sink = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const line of chunk.toString().split('\n')) if (line !== '') records.push(JSON.parse(line) as never);
    done();
  },
});

let env: TestWorkflowEnvironment;
let worker: Worker;
let running: Promise<void>;
let port: number;
let uniqueName: (prefix: string) => string;
const taskQueue = `metrics-${process.pid}`;
const ok = mockActivities({ plan: plan('kubeadm') });
const broken = mockActivities({ plan: plan('kubeadm'), failAt: 'installChart' });
let failNext = false;

const fleet: FleetActivities = {
  resolveRolloutSites: async () => ({ sites: [{ name: 'edge-a' }, { name: 'edge-b' }], missing: [] }),
  findBusySites: async () => ({}),
  // Two sites: started as children, never in bulk.
  startRolloutSites: async () => ({}),
  reportSiteOutcome: async () => undefined,
  findUnreportedSites: async () => [],
};

beforeAll(async () => {
  port = await freePort();
  // The process's runtime, as src/worker/main.ts installs it; before test/support/temporal.ts would install its own.
  installRuntimeLogger(pino({ level: 'info', redact: { paths: redactedPaths, censor: '[redacted]' } }, sink), {
    workerMetricsPort: port,
  });
  const temporal = await import('../support/temporal.ts');
  uniqueName = temporal.uniqueName;
  env = await temporal.startTemporal();
  const noop = () => undefined;
  const workflowBundle = await bundleWorkflowCode({
    workflowsPath,
    workflowInterceptorModules: workflowInterceptorModules(false),
    logger: { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop },
  });
  // One worker for every test: the script (success or a failing chart) is picked per call.
  const pick = () => (failNext ? broken : ok).activities;
  const activities = Object.fromEntries(
    Object.keys(ok.activities).map((name) => [
      name,
      (...args: unknown[]) => (pick()[name as keyof typeof ok.activities] as (...a: unknown[]) => unknown)(...args),
    ]),
  );
  const provisionHost: ProvisioningActivities['provisionHost'] = async (input) => {
    Context.current().log.info('provisioning host', { image: input.image.url, password: 'bmc-secret' });
    return ok.activities.provisionHost(input);
  };
  worker = await createWorker({
    connection: env.nativeConnection,
    namespace: temporal.testNamespace,
    codecKeys: testCodecKeys,
    taskQueue,
    activities: { ...activities, provisionHost, ...fleet },
    workflowBundle,
    tracing: false,
  });
  running = worker.run();
});

afterAll(async () => {
  worker.shutdown();
  await running;
  await env.teardown();
});

/** The endpoint's samples: `name{labels}` → value. */
async function scrape(): Promise<{
  text: string;
  samples: { name: string; labels: Record<string, string>; value: number }[];
}> {
  const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
  const samples = text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
      if (!m) throw new Error(`not a sample: ${line}`);
      const labels: Record<string, string> = {};
      for (const l of (m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!;
      return { name: m[1]!, labels, value: Number(m[3]) };
    });
  return { text, samples };
}

/** The sum of the samples of `name` whose labels include `labels`. */
function total(
  samples: Awaited<ReturnType<typeof scrape>>['samples'],
  name: string,
  labels: Record<string, string> = {},
) {
  return samples
    .filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
    .reduce((sum, s) => sum + s.value, 0);
}

async function install(fail = false) {
  failNext = fail;
  const workflowId = uniqueName('site/edge-01/install');
  const handle = await env.client.workflow.start(siteInstall, {
    taskQueue,
    workflowId,
    args: [{ site: 'edge-01', keepOnFailure: false }],
  });
  await handle.result().catch(() => undefined);
  failNext = false;
  return workflowId;
}

let installId: string;
let scraped: Awaited<ReturnType<typeof scrape>>;

describe('the worker metrics endpoint', () => {
  it('counts a siteInstall started and succeeded, and times its activities', async () => {
    const before = await scrape();
    installId = await install();
    const after = await scrape();
    const moved = (name: string, labels: Record<string, string>) =>
      total(after.samples, name, labels) - total(before.samples, name, labels);
    expect(moved(metricNames.operationsStarted, { kind: 'install' })).toBe(1);
    expect(moved(metricNames.operationsCompleted, { kind: 'install', outcome: 'succeeded' })).toBe(1);
    expect(moved(`${metricNames.operationDuration}_count`, { kind: 'install', outcome: 'succeeded' })).toBe(1);
    // Three hosts provisioned: three provisionHost attempts timed, all succeeded.
    expect(
      moved(`${metricNames.activityDuration}_count`, { activityType: 'provisionHost', outcome: 'succeeded' }),
    ).toBe(3);
    expect(moved(`${metricNames.activityDuration}_count`, { activityType: 'installChart' })).toBe(1);
  });

  it('counts a failed install as failed, and the failed activity attempt', async () => {
    const before = await scrape();
    await install(true);
    const after = await scrape();
    const moved = (name: string, labels: Record<string, string>) =>
      total(after.samples, name, labels) - total(before.samples, name, labels);
    expect(moved(metricNames.operationsStarted, { kind: 'install' })).toBe(1);
    expect(moved(metricNames.operationsCompleted, { kind: 'install', outcome: 'failed' })).toBe(1);
    expect(moved(`${metricNames.activityDuration}_count`, { activityType: 'installChart', outcome: 'failed' })).toBe(1);
  });

  it("reports a rollout's sites by state and counts the rollout and its sites' operations", async () => {
    const before = await scrape();
    const rolloutId = uniqueName('r');
    const handle = await env.client.workflow.start(fleetRollout, {
      taskQueue,
      workflowId: `rollout/${rolloutId}`,
      args: [
        {
          rolloutId,
          request: RolloutRequest.parse({ selector: { names: ['edge-a', 'edge-b'] }, operation: 'install' }),
        },
      ],
    });
    await handle.result();
    scraped = await scrape();
    const moved = (name: string, labels: Record<string, string>) =>
      total(scraped.samples, name, labels) - total(before.samples, name, labels);
    expect(moved(metricNames.operationsCompleted, { kind: 'rollout', outcome: 'succeeded' })).toBe(1);
    expect(moved(metricNames.operationsCompleted, { kind: 'install', outcome: 'succeeded' })).toBe(2);
    const sites = (state: string) => total(scraped.samples, metricNames.rolloutSites, { rollout: rolloutId, state });
    expect([sites('total'), sites('succeeded'), sites('running'), sites('pending'), sites('failed')]).toEqual([
      2, 2, 0, 0, 0,
    ]);
  });

  it("serves the SDK's worker metrics on the same endpoint", () => {
    for (const name of ['temporal_worker_task_slots_available', 'temporal_workflow_completed']) {
      expect(scraped.samples.some((s) => s.name === name)).toBe(true);
    }
  });
});

describe('the fleet dashboard', () => {
  interface Panel {
    title?: string;
    targets?: { expr?: string }[];
    panels?: Panel[];
  }
  const dashboard = JSON.parse(readFileSync(dashboardPath, 'utf8')) as {
    panels: Panel[];
    templating: { list: { name: string; type: string }[] };
  };
  const panels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).filter((p) => p.targets !== undefined);

  it('takes its Prometheus data source as a variable', () => {
    expect(dashboard.templating.list).toContainEqual(expect.objectContaining({ type: 'datasource' }));
    expect(panels.length).toBeGreaterThanOrEqual(6);
  });

  it('queries only metrics the worker serves (scraped after the runs above)', () => {
    const served = new Set(scraped.samples.map((s) => s.name));
    const missing: string[] = [];
    for (const panel of panels) {
      for (const target of panel.targets ?? []) {
        const names = (target.expr ?? '').match(/\b(?:icn|temporal)_[a-z0-9_]+/g) ?? [];
        expect(names.length).toBeGreaterThan(0);
        for (const name of names) if (!served.has(name)) missing.push(`${panel.title ?? '?'}: ${name}`);
      }
    }
    expect(missing).toEqual([]);
  });
});

describe('worker logs', () => {
  it("carry the workflow id, the activity and the site and host of an activity's log record, secrets redacted", () => {
    const record = records.find((r) => r.msg === 'provisioning host' && r.workflowId === installId);
    expect(record).toMatchObject({
      level: 30,
      workflowId: installId,
      activityType: 'provisionHost',
      site: 'edge-01',
      host: expect.stringMatching(/^host-[123]$/),
      sdkComponent: 'activity',
      password: '[redacted]',
    });
    expect(record).not.toHaveProperty('taskToken');
  });

  it("log a failed activity's error with its site", () => {
    const record = records.find((r) => r.msg === 'Activity failed' && r.activityType === 'installChart');
    expect(record).toMatchObject({
      level: 40,
      site: 'edge-01',
      err: expect.objectContaining({ message: expect.stringContaining('broke') }),
    });
  });
});
