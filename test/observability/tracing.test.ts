// Needs: the real Temporal dev server (test/support/temporal.ts). The site activities are mocked; spans are kept by an
// in-memory exporter in place of the OTLP one.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { trace } from '@opentelemetry/api';
import { InMemorySpanExporter, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, type Worker } from '@temporalio/worker';
import { createTracing, tracingEnabled, withClientTracing } from '../../src/observability/tracing.ts';
import { createWorker, workflowInterceptorModules, workflowsPath } from '../../src/worker/worker.ts';
import { siteInstall } from '../../src/workflows/index.ts';
import { mockActivities, plan } from '../support/site-activities-mock.ts';
import { startTemporal, testNamespace, uniqueName } from '../support/temporal.ts';
import { testCodecKeys } from '../support/test-codec-keys.ts';

const exporter = new InMemorySpanExporter();
const tracing = createTracing({ serviceName: 'icn-test', exporter, simple: true });
const taskQueue = uniqueName('tracing');
let env: TestWorkflowEnvironment;
let worker: Worker;
let running: Promise<void>;
/** The span an activity finds current, as the activity context logger reads it for trace_id and span_id. */
const activeInActivity: string[] = [];

beforeAll(async () => {
  env = await startTemporal();
  const noop = () => undefined;
  const mock = mockActivities({ plan: plan('kubeadm') });
  worker = await createWorker({
    connection: env.nativeConnection,
    namespace: testNamespace,
    codecKeys: testCodecKeys,
    taskQueue,
    activities: {
      ...mock.activities,
      loadSitePlan: async (site: string) => {
        activeInActivity.push(trace.getActiveSpan()?.spanContext().spanId ?? 'none');
        return mock.activities.loadSitePlan(site);
      },
    },
    workflowBundle: await bundleWorkflowCode({
      workflowsPath,
      workflowInterceptorModules: workflowInterceptorModules(true),
      logger: { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop },
    }),
    tracing,
  });
  running = worker.run();
});

afterAll(async () => {
  worker.shutdown();
  await running;
  await env.teardown();
  await tracing.shutdown();
});

describe('tracing through the Temporal interceptors', () => {
  it('links StartWorkflow → RunWorkflow → StartActivity → RunActivity for a site install, with the workflow id', async () => {
    const client = withClientTracing(env.client, tracing);
    const workflowId = uniqueName('site/edge-01/install');
    await client.workflow.execute(siteInstall, {
      taskQueue,
      workflowId,
      args: [{ site: 'edge-01', keepOnFailure: false }],
    });
    await tracing.flush();
    const spans = exporter.getFinishedSpans();
    const one = (name: string, parent?: ReadableSpan): ReadableSpan => {
      const found = spans.filter(
        (s) => s.name === name && (parent === undefined || s.parentSpanId === parent.spanContext().spanId),
      );
      expect({ name, found: found.length }).toEqual({ name, found: 1 });
      return found[0]!;
    };
    const start = one('StartWorkflow:siteInstall');
    const run = one('RunWorkflow:siteInstall', start);
    const schedule = one('StartActivity:loadSitePlan', run);
    const execute = one('RunActivity:loadSitePlan', schedule);
    for (const span of [start, execute]) expect(span.attributes.temporalWorkflowId).toBe(workflowId);
    expect(activeInActivity).toEqual([execute.spanContext().spanId]);
    expect(new Set([start, run, schedule, execute].map((s) => s.spanContext().traceId)).size).toBe(1);
    // Every host's provisioning is a child of the same run.
    expect(spans.filter((s) => s.name === 'RunActivity:provisionHost')).toHaveLength(3);
    expect(start.resource.attributes['service.name']).toBe('icn-test');
  });

  it('is off unless the OpenTelemetry environment names an OTLP endpoint', () => {
    expect(tracingEnabled({})).toBe(false);
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(true);
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://collector:4318/v1/traces' })).toBe(true);
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_SDK_DISABLED: 'true' })).toBe(
      false,
    );
    expect(tracingEnabled({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318', OTEL_TRACES_EXPORTER: 'none' })).toBe(
      false,
    );
  });
});
