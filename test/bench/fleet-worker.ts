/**
 * The fleet benchmark's worker, a process of its own so that its CPU and peak memory are its own: the project's
 * workflows, the site activities over the real clients (Ironic, BPA, Kubernetes: pointed at the simulated sites by
 * the inventory) and the PostgreSQL inventory it shares with the driver. Started by test/bench/fleet.ts; it counts
 * the activities it completes and answers {type: 'stats'} over IPC.
 *
 * Worker.create rather than src/worker/worker.ts's createWorker, which takes no tuning: the options are the same plus
 * the ones under test (ICN_BENCH_WORKER_OPTIONS, JSON).
 */
import { createWriteStream } from 'node:fs';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { NativeConnection, DefaultLogger, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { createActivities } from '../../src/activities/index.ts';
import { createSiteActivities } from '../../src/activities/site.ts';
import { BpaClient } from '../../src/clients/bpa/index.ts';
import type { WorkerTuning } from '../../src/domain/config.ts';
import { openStore } from '../../src/store/index.ts';
import { dataConverter } from '../../src/temporal/connection.ts';
import { realPeers } from '../../src/worker/peers.ts';
import { maxHeartbeatThrottleInterval, stickyQueueScheduleToStartTimeout } from '../../src/worker/worker.ts';
import { testCodecKeys } from '../support/test-codec-keys.ts';

export type TunableWorkerOptions = Pick<
  WorkerOptions,
  | 'maxConcurrentActivityTaskExecutions'
  | 'maxConcurrentWorkflowTaskExecutions'
  | 'maxConcurrentLocalActivityExecutions'
  | 'maxCachedWorkflows'
  | 'maxConcurrentActivityTaskPolls'
  | 'maxConcurrentWorkflowTaskPolls'
  | 'nonStickyToStickyPollRatio'
  | 'workflowTaskPollerBehavior'
  | 'workflowThreadPoolSize'
  | 'stickyQueueScheduleToStartTimeout'
> &
  Pick<WorkerTuning, 'isolateExecutionTimeout'>;

export interface WorkerStats {
  type: 'stats';
  completed: number;
  failed: number;
  byType: Record<string, number>;
  maxRssMB: number;
  cpuSeconds: number;
  /** How late the main thread's event loop ran timers (activities, the SDK's polling): ms. */
  eventLoopDelay: { mean: number; p99: number; max: number };
  /** Calls to the inventory (queries, transactions) and to the BPAs: count, mean and p99 ms, pool waits included. */
  waits: Record<string, { count: number; mean: number; p99: number }>;
  /** Inventory statements by their opening words: which reads and writes a site costs. */
  statements: Record<string, number>;
  /**
   * What failed, by where and message (numbers and ids masked): activities that threw, BPA requests that got no
   * answer, and BPA job event streams that broke (the BPM falls back to reading the job, then opens a new one).
   */
  failures: Record<string, number>;
}

/** A message with its numbers and ids masked, so that the same failure on every site counts as one. */
export function failureKey(where: string, err: unknown): string {
  const e = err as { message?: string; cause?: { message?: string; code?: string } };
  const cause = e.cause?.code ?? e.cause?.message;
  const message = `${e.message ?? String(err)}${cause === undefined ? '' : ` (${cause})`}`;
  return `${where}: ${message.replace(/[0-9a-f]{8,}|\d+/gi, '#').slice(0, 160)}`;
}

class Latencies {
  readonly #ms: number[] = [];

  async time<T>(fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      return await fn();
    } finally {
      this.#ms.push(performance.now() - started);
    }
  }

  summary(): { count: number; mean: number; p99: number } {
    const sorted = this.#ms.splice(0).sort((a, b) => a - b);
    const mean = sorted.reduce((t, v) => t + v, 0) / Math.max(1, sorted.length);
    const p99 = sorted[Math.floor(sorted.length * 0.99)] ?? 0;
    return { count: sorted.length, mean: Math.round(mean * 10) / 10, p99: Math.round(p99) };
  }
}

function env(name: string): string {
  const value = process.env[name];
  if (value === undefined || value === '') throw new Error(`${name} is not set (started by test/bench/fleet.ts)`);
  return value;
}

// ICN_BENCH_CORE_LOG (an env filter, e.g. WARN,temporalio_sdk_core=DEBUG) writes the SDK core's own log when a run is
// being diagnosed: polls, activations, evictions, into ICN_BENCH_CORE_LOG_FILE.<pid>.
const coreLog = process.env.ICN_BENCH_CORE_LOG;
const coreLogFile =
  coreLog === undefined ? undefined : createWriteStream(`${env('ICN_BENCH_CORE_LOG_FILE')}.${process.pid}`);
Runtime.install({
  logger:
    coreLogFile === undefined
      ? new DefaultLogger('ERROR')
      : new DefaultLogger('TRACE', (entry) => {
          const fields =
            entry.meta === undefined
              ? ''
              : ` ${JSON.stringify(entry.meta, (_k, v: unknown) => (typeof v === 'bigint' ? String(v) : v))}`;
          coreLogFile.write(`${Number(entry.timestampNanos / 1_000_000n)} ${entry.level} ${entry.message}${fields}\n`);
        }),
  ...(coreLog !== undefined && { telemetryOptions: { logging: { filter: coreLog, forward: {} } } }),
});
const tuning = JSON.parse(process.env.ICN_BENCH_WORKER_OPTIONS ?? '{}') as TunableWorkerOptions;
const pollMs = process.env.ICN_BENCH_BPA_POLL_MS;
const store = await openStore({
  databaseUrl: env('ICN_BENCH_DATABASE_URL'),
  databasePoolSize: Number(env('ICN_BENCH_PG_POOL')),
  dataDir: undefined,
  artifactDir: env('ICN_BENCH_ARTIFACT_DIR'),
  maxArtifactBytes: 64 * 2 ** 20,
  secretKeys: testCodecKeys,
});
/** Time spent waiting on the inventory and on the BPAs, as the activities see it: where a host's time goes. */
const waits = { sql: new Latencies(), transaction: new Latencies(), bpa: new Latencies() };
const sql = { ...store.sql };
const statements: Record<string, number> = {};
store.sql.query = async (...args) => {
  const key = args[0].replace(/\s+/g, ' ').trim().slice(0, 60);
  statements[key] = (statements[key] ?? 0) + 1;
  return waits.sql.time(() => sql.query(...args));
};
store.sql.transaction = async (fn) => waits.transaction.time(() => sql.transaction(fn));
const failures: Record<string, number> = {};
const failed = (where: string, err: unknown): void => {
  const key = failureKey(where, err);
  failures[key] = (failures[key] ?? 0) + 1;
};
/** The body as it comes, its error (a stream that broke) counted on the way. */
function watched(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  // Whether the `done` line came; a chunk's last characters are kept, as the marker may span two chunks.
  let tail = '';
  let ended = false;
  // The BPM cancels the stream once it has read `done`: a read still under way then ends on a closed controller.
  let cancelled = false;
  return new ReadableStream({
    async pull(controller) {
      try {
        const { done, value } = await reader.read();
        if (cancelled) return;
        if (done) {
          // The BPA ends a job's stream after its `done` line: an end without one is a break too.
          if (!ended) failed('bpa event stream', new Error('ended without its done event'));
          controller.close();
        } else {
          const text = tail + decoder.decode(value, { stream: true });
          ended ||= text.includes('"type":"done"');
          tail = text.slice(-16);
          controller.enqueue(value);
        }
      } catch (err) {
        if (cancelled) return;
        failed('bpa event stream', err);
        controller.error(err);
      }
    },
    cancel: (reason) => {
      cancelled = true;
      return reader.cancel(reason);
    },
  });
}
const timedFetch: typeof fetch = async (input, init) => {
  let res: Response;
  try {
    res = await waits.bpa.time(() => fetch(input, init));
  } catch (err) {
    failed(`bpa ${init?.method ?? 'GET'}`, err);
    throw err;
  }
  // The BPA client passes its URL as a string.
  if (res.body === null || typeof input !== 'string' || !input.endsWith('/events')) return res;
  return new Response(watched(res.body), { status: res.status, statusText: res.statusText, headers: res.headers });
};
const peers = {
  ...realPeers(store, { helmBinary: 'helm' }),
  bpa: (url: string, token: string) => new BpaClient({ url, token, fetch: timedFetch }),
};
const activities: Record<string, unknown> = {
  ...createActivities({ fetch: globalThis.fetch, probeTimeoutMs: 5000 }),
  ...createSiteActivities({ ...peers, ...(pollMs !== undefined && { bpaPollIntervalMs: Number(pollMs) }) }),
};

const stats = { completed: 0, failed: 0, byType: {} as Record<string, number> };
const loopDelay = monitorEventLoopDelay({ resolution: 10 });
loopDelay.enable();
const counted = Object.fromEntries(
  Object.entries(activities).map(([name, fn]) => [
    name,
    async (...args: unknown[]) => {
      try {
        const result = await (fn as (...a: unknown[]) => Promise<unknown>)(...args);
        stats.completed++;
        stats.byType[name] = (stats.byType[name] ?? 0) + 1;
        return result;
      } catch (err) {
        stats.failed++;
        failed(`activity ${name}`, err);
        throw err;
      }
    },
  ]),
);

const connection = await NativeConnection.connect({ address: env('ICN_BENCH_TEMPORAL_ADDRESS') });
const worker = await Worker.create({
  connection,
  namespace: env('ICN_BENCH_NAMESPACE'),
  taskQueue: env('ICN_BENCH_TASK_QUEUE'),
  activities: counted,
  dataConverter: dataConverter(testCodecKeys),
  workflowBundle: { codePath: env('ICN_BENCH_WORKFLOW_BUNDLE') },
  maxHeartbeatThrottleInterval,
  stickyQueueScheduleToStartTimeout,
  ...tuning,
});

process.on('message', (message: { type?: string }) => {
  if (message.type === 'stats') {
    const usage = process.resourceUsage();
    process.send?.({
      type: 'stats',
      ...stats,
      maxRssMB: Math.round(usage.maxRSS / 1024),
      cpuSeconds: (usage.userCPUTime + usage.systemCPUTime) / 1e6,
      eventLoopDelay: {
        mean: Math.round(loopDelay.mean / 1e6),
        p99: Math.round(loopDelay.percentile(99) / 1e6),
        max: Math.round(loopDelay.max / 1e6),
      },
      waits: Object.fromEntries(Object.entries(waits).map(([k, v]) => [k, v.summary()])),
      statements,
      failures,
    } satisfies WorkerStats);
    loopDelay.reset();
  } else if (message.type === 'stop') {
    worker.shutdown();
  }
});
const running = worker.run();
process.send?.({ type: 'ready' });
await running;
await connection.close();
await store.close();
if (process.connected) process.disconnect();
