/**
 * Fleet patch benchmark: the real fleetRollout, sitePatch workflows, activities and clients, on the real Temporal dev
 * server, against simulated sites (test/sim: one server answering every site's Ironic, BPA and Kubernetes calls, each
 * BPA job taking hostStepSeconds per host). Only the peers are fake. The profiles change binary packages only, so a
 * patch calls no Helm.
 *
 * Per scenario, everything is fresh: a dev server, a PostgreSQL database holding the sites (PostgreSQL rather than
 * PGlite: it is production's store, and the only one a worker in another process can share; its CPU is then not the
 * workers'), the simulation (a child process) and the workers: as many processes as the global chart runs replicas
 * (2; --workers), each with its own CPU and peak RSS. Results: bench/results/fleet.json and a chart of sites completed over time, bench/results/fleet.svg.
 *
 *   npm run bench -- fleet [scenario...] [options]   (node test/bench/fleet.ts --help)
 *   scenarios: every one below by default, or custom ones: SITESxHOSTS[@CONCURRENCY][:STEP], e.g. 20x3@20:2
 *
 * The defaults are the tuned settings; --sdk-defaults runs the untuned baseline. Besides the results, it prints per
 * scenario where a site's time went (from histories and the simulation's job timings), the CPU each process spent
 * per host patched, the worker's waits on the inventory and the BPAs, and the rollout's runs.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import type { WorkflowExecutionInfo, WorkflowHandle } from '@temporalio/client';
import proto from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode } from '@temporalio/worker';
import { Command } from 'commander';
import pg from 'pg';
import { type PostgresLabInfo, postgresUrl } from '../../deploy/dev/lab/postgres.ts';
import { isAlive } from '../../deploy/dev/lab/processes.ts';
import { startTemporalPostgres } from '../../deploy/dev/temporal-postgres.ts';
import {
  defaultHostTakeoverSeconds,
  type OperationProgress,
  RolloutRequest,
  type RolloutResult,
} from '../../src/domain/operations.ts';
import { workflowsPath } from '../../src/worker/worker.ts';
import { progress as progressQuery } from '../../src/workflows/progress.ts';
import { labPeer } from '../support/lab.ts';
import { quietTemporalRuntime } from '../support/quiet-runtime.ts';
import { openTestStore } from '../support/store.ts';
import { startTemporalServer, testEnvironmentOn, testNamespace } from '../support/temporal.ts';
import { patchVersion, profileName, seedProfiles, seedSites, simLayout } from '../sim/inventory.ts';
import type { SimServerInfo, SimStats } from '../sim/server.ts';
import type { SimBehaviour, SimJobTiming } from '../sim/sites.ts';
import { type ChartSeries, lineChart } from './chart.ts';
import type { TunableWorkerOptions, WorkerStats } from './fleet-worker.ts';
import {
  cpuSeconds,
  findProcesses,
  loadAverage,
  machineCpuSeconds,
  peakRssMB,
  rssMB,
  threadCpuSeconds,
} from './proc.ts';

interface Scenario {
  name: string;
  sites: number;
  hostsPerSite: number;
  maxConcurrency: number;
  hostStepSeconds: number;
  /** The patch's hostTakeoverSeconds (the host step's heartbeat timeout); absent: the product's default. */
  hostTakeoverSeconds?: number;
}

/**
 * The issue's sizes, unlimited (maxConcurrency = every site at once) and one with a limit. 100 × 10 takes the ICN
 * design's own figure: 100 sites patched in 10 minutes, each site's 10 hosts one at a time, so 60 s per host step;
 * 100x10-15s is the same fleet at a quarter of that, where the orchestration's own seconds weigh four times as much.
 * Elsewhere each host step is long enough that the CPU the scenario needs fits on this machine's 2 cores (≈ 55-110
 * ms of CPU per host patched, all processes together: 10,000 × 3 hosts need ≈ 14-28 minutes of both cores, hence
 * 5-minute steps there, about what a bare-metal host's package change and reboot take), and short enough that the
 * whole run takes about an hour.
 */
const scenarios: Scenario[] = [
  { name: '100x10', sites: 100, hostsPerSite: 10, maxConcurrency: 100, hostStepSeconds: 60 },
  { name: '100x10-15s', sites: 100, hostsPerSite: 10, maxConcurrency: 100, hostStepSeconds: 15 },
  { name: '1000x10', sites: 1000, hostsPerSite: 10, maxConcurrency: 1000, hostStepSeconds: 40 },
  // With 5-minute host steps, a 10-minute takeover (the default 150 s sends 2 heartbeats per host, and the server
  // checks each in a timer task: writes that cost the server about as much as the rest of the host together; see
  // the README's paragraph on hostTakeoverSeconds for what it gave).
  {
    name: '10000x3',
    sites: 10_000,
    hostsPerSite: 3,
    maxConcurrency: 10_000,
    hostStepSeconds: 300,
    hostTakeoverSeconds: 600,
  },
  { name: '100x10-c20', sites: 100, hostsPerSite: 10, maxConcurrency: 20, hostStepSeconds: 4 },
];

/**
 * What tuning gave (see the issue's note): eager activity dispatch saves a matching round trip per activity; a
 * rollout's run is suggested to continue as new after 10,000 events rather than 4,096, so that a 1,000-site rollout
 * does not continue as new in the middle of its sites' final burst of reports.
 */
const tunedServerConfig = [
  'system.enableActivityEagerExecution=true',
  'limit.historyCount.suggestContinueAsNew=10000',
  // The dev server lowers its mutable-state cache to 8,096 workflows (production's default: 128,000); 10,000 sites
  // running at once cycled through it, each of their tasks a miss reloading the workflow from the database.
  'history.hostLevelCacheMaxSize=128000',
];
/**
 * The dev server's Go garbage collector let run to 4× the live heap rather than 2× (GOGC=400; production Temporal
 * takes the same variable, see the README): measured on 3,000 × 3 at 90 s steps in one session, the server's CPU
 * 181.7 → 167.4 s and the wall 387.6 → 372.3 s, for a peak RSS of 959 MB instead of 573.
 */
const tunedServerEnv = ['GOGC=400'];
/** A larger young generation: fewer scavenges of the many short-lived objects activities make (≈ 10% of the worker's CPU). */
const tunedWorkerNodeFlags = '--max-old-space-size=6144 --max-semi-space-size=32';

const collect = (value: string, previous: string[]) => [...previous, value];
const program = new Command()
  .argument('[scenarios...]', `${scenarios.map((s) => s.name).join(', ')} or SITESxHOSTS[@CONCURRENCY][:STEP]`)
  .option('--step <seconds>', 'hostStepSeconds for every scenario run')
  .option(
    '--host-takeover <seconds>',
    "the patch's hostTakeoverSeconds for every scenario run (the host step's heartbeat timeout); by default the " +
      "scenario's (10000x3: 600) or the product's (150)",
  )
  .option(
    '--bpa-poll-ms <ms>',
    "the BPM's poll interval of a BPA job (bpaPollIntervalMs): only used when a job's event stream breaks (the " +
      'BPM waits on the stream), 2 s by default',
  )
  .option(
    '--activity-slots <n>',
    'maxConcurrentActivityTaskExecutions (a host is one activity, mostly waiting)',
    '12000',
  )
  .option(
    '--sticky-timeout <seconds>',
    "stickyQueueScheduleToStartTimeout: how long a site's next task waits for its own worker before any worker " +
      "replays the site to run it (the product's: 120 s, src/worker/worker.ts). 600 s at 10,000 × 3 saved the sticky " +
      'replays but not the wall: 2,892.8 s against 2,570.3 s at 120 s, run one after the other ' +
      '(bench/results/fleet-2026-12-07-f.json)',
  )
  .option('--workflow-slots <n>', 'maxConcurrentWorkflowTaskExecutions', '100')
  .option('--local-activity-slots <n>', 'maxConcurrentLocalActivityExecutions', '100')
  .option('--cached <n>', 'maxCachedWorkflows (every running site operation stays cached: no replays)', '12000')
  .option('--activity-pollers <n>', 'maxConcurrentActivityTaskPolls', '10')
  .option('--workflow-pollers <n>', 'maxConcurrentWorkflowTaskPolls', '10')
  .option(
    '--non-sticky-ratio <r>',
    "nonStickyToStickyPollRatio: the workflow pollers' share on the shared queue, where every site's first task " +
      'waits (0.8: 8 of 10 pollers; the 10,000-site run at 0.5 had its last sites wait 697 s for their first task ' +
      'while the others moved between hosts within seconds)',
    '0.8',
  )
  .option(
    '--workflow-poller-autoscaling <min:initial:max>',
    "workflowTaskPollerBehavior autoscaling: the sticky and the shared queue's pollers each between min and max, " +
      "scaled on the server's hints, the sticky queue first when it has a backlog (replaces --workflow-pollers and " +
      '--non-sticky-ratio)',
  )
  .option(
    '--deadlock-timeout-ms <ms>',
    'isolateExecutionTimeout (ICN_WORKER_WORKFLOW_DEADLOCK_TIMEOUT_MS): 0, no watchdog thread per entry into a workflow',
    '0',
  )
  .option(
    '--workflow-stack-traces <on|off>',
    'ICN_WORKER_WORKFLOW_STACK_TRACES: off, no stack recorded per promise a workflow makes (the stack trace query ' +
      'answers that they are not enabled); 10% less machine CPU per site started (1,000 × 1 probe: 152 → 137 ms)',
    'off',
  )
  .option(
    '--workers <n>',
    "worker processes on the task queue: the global chart's default replicas (deploy/charts/icn-global: worker.replicas)",
    '2',
  )
  .option('--pg-pool <n>', "each worker's PostgreSQL pool (ICN_DATABASE_POOL_SIZE)", '25')
  .option('--worker-node-flags <flags>', "the worker process's Node flags", tunedWorkerNodeFlags)
  .option('--sim-node-flags <flags>', "the simulation process's Node flags (e.g. --cpu-prof to see what it costs)", '')
  .option(
    '--temporal <dev|postgres>',
    "dev: the temporal CLI's dev server (SQLite, one connection); postgres: the Temporal server on the machine's " +
      'PostgreSQL as production runs it (deploy/dev/temporal-postgres.ts), a database pair of its own per scenario',
    'dev',
  )
  .option('--history-shards <n>', 'history shards of the server on PostgreSQL', '4')
  .option('--server-config <key=value>', 'a dynamic config value of the server (repeatable)', collect, [])
  .option(
    '--server-env <key=value>',
    `an environment variable of the dev server (repeatable; replaces the tuned ${tunedServerEnv.join(' ')})`,
    collect,
    [],
  )
  .option(
    '--preload <module>',
    'a module the bundle shares across workflows (bundlerOptions.preloadModules; repeatable)',
    collect,
    [],
  )
  .option(
    '--sdk-defaults',
    "the untuned baseline: the worker with the SDK's and Node's defaults, the BPM's default poll interval (2 s), " +
      "the dev server's own configuration",
  )
  .option(
    '--bulk-start-from <n>',
    "the rollout's limits.bulkStartFrom: a turn of this many sites or more starts them in bulk, fewer as children " +
      '(a number above the fleet: every site a child)',
  )
  .option(
    '--starts-in-flight <n>',
    "the rollout's limits.startsInFlight: starts each bulk-start activity has waiting on the server at once (8)",
  )
  .option(
    '--merge',
    'keep the scenarios of the results file (--out) that this run does not run, with their chart lines: a partial ' +
      'rerun updates the file',
  )
  .option('--sample <n>', 'sites whose histories are read for schedule-to-start latencies', '200')
  .option('--out <file>', 'results file (the chart goes beside it, .svg)', 'bench/results/fleet.json')
  .parse();
const opts = program.opts<{
  step?: string;
  hostTakeover?: string;
  bpaPollMs?: string;
  activitySlots: string;
  workflowSlots: string;
  localActivitySlots: string;
  cached: string;
  activityPollers: string;
  workflowPollers: string;
  nonStickyRatio: string;
  workflowPollerAutoscaling?: string;
  deadlockTimeoutMs: string;
  workflowStackTraces: string;
  workerNodeFlags: string;
  simNodeFlags: string;
  pgPool: string;
  workers: string;
  temporal: string;
  historyShards: string;
  serverConfig: string[];
  serverEnv: string[];
  sdkDefaults?: boolean;
  preload: string[];
  sample: string;
  bulkStartFrom?: string;
  startsInFlight?: string;
  stickyTimeout?: string;
  merge?: boolean;
  out: string;
}>();

function pick(names: string[]): Scenario[] {
  if (names.length === 0) return scenarios;
  return names.map((name) => {
    const known = scenarios.find((s) => s.name === name);
    if (known) return known;
    const m = /^(\d+)x(\d+)(?:@(\d+))?(?::([\d.]+))?$/.exec(name);
    if (!m) throw new Error(`unknown scenario "${name}"; known: ${scenarios.map((s) => s.name).join(', ')}`);
    const sites = Number(m[1]);
    return {
      name,
      sites,
      hostsPerSite: Number(m[2]),
      maxConcurrency: Number(m[3] ?? sites),
      hostStepSeconds: Number(m[4] ?? 3),
    };
  });
}

const selected = pick(program.args).map((s) => ({
  ...s,
  ...(opts.step !== undefined && { hostStepSeconds: Number(opts.step) }),
  ...(opts.hostTakeover !== undefined && { hostTakeoverSeconds: Number(opts.hostTakeover) }),
}));
const taskQueue = 'fleet-bench';
const workerTuning: TunableWorkerOptions = opts.sdkDefaults
  ? {}
  : {
      maxConcurrentActivityTaskExecutions: Number(opts.activitySlots),
      maxConcurrentWorkflowTaskExecutions: Number(opts.workflowSlots),
      maxConcurrentLocalActivityExecutions: Number(opts.localActivitySlots),
      maxCachedWorkflows: Number(opts.cached),
      maxConcurrentActivityTaskPolls: Number(opts.activityPollers),
      ...workflowPolling(),
      isolateExecutionTimeout: Number(opts.deadlockTimeoutMs),
      ...(opts.stickyTimeout !== undefined && {
        stickyQueueScheduleToStartTimeout: `${Number(opts.stickyTimeout)} seconds`,
      }),
    };

function workflowPolling(): TunableWorkerOptions {
  if (opts.workflowPollerAutoscaling === undefined) {
    return {
      maxConcurrentWorkflowTaskPolls: Number(opts.workflowPollers),
      nonStickyToStickyPollRatio: Number(opts.nonStickyRatio),
    };
  }
  const m = /^(\d+):(\d+):(\d+)$/.exec(opts.workflowPollerAutoscaling);
  if (!m)
    throw new Error(`--workflow-poller-autoscaling must be min:initial:max, not "${opts.workflowPollerAutoscaling}"`);
  const [minimum, initial, maximum] = [Number(m[1]), Number(m[2]), Number(m[3])];
  return { workflowTaskPollerBehavior: { type: 'autoscaling', minimum, initial, maximum } };
}
const workerNodeFlags = opts.sdkDefaults ? '' : opts.workerNodeFlags;
const serverConfig = opts.serverConfig.length > 0 || opts.sdkDefaults ? opts.serverConfig : tunedServerConfig;
const serverEnv = opts.serverEnv.length > 0 || opts.sdkDefaults ? opts.serverEnv : tunedServerEnv;

/** The BPM's poll interval for a scenario; undefined: the BPM's own default. */
function bpaPollMs(): number | undefined {
  return opts.bpaPollMs === undefined ? undefined : Number(opts.bpaPollMs);
}

/** Exactly the shape issue 8 asks for. */
interface ScenarioResult {
  name: string;
  sites: number;
  hostsPerSite: number;
  maxConcurrency: number;
  hostStepSeconds: number;
  wallSeconds: number;
  criticalPathSeconds: number;
  activitiesPerSecond: number;
  scheduleToStartP50Ms: number;
  scheduleToStartP99Ms: number;
  maxHistoryEvents: number;
  maxHistoryBytes: number;
  workerMaxRssMB: number;
  serverMaxRssMB: number;
  /** Beyond the issue's shape: the host step's heartbeat timeout, the worker processes, and the code it ran. */
  hostTakeoverSeconds: number;
  workers: number;
  commit: string;
}

/** What the console and the chart get beside the results. */
interface ScenarioDetail {
  completions: number[];
  idealSeconds: number;
  cpu: { worker: number; server: number; sim: number; postgres: number; machine: number };
  /** CPU time the hypervisor gave other guests during the run (not in cpu.machine): a noisy neighbour's share. */
  stealSeconds: number;
  /** CPU milliseconds per host patched, by process. */
  cpuMsPerHost: Record<string, number>;
  /** The worker's CPU seconds by thread (name): whether one thread is the one that holds the rest back. */
  workerThreads: Record<string, number>;
  /** Each run of the rollout (continue-as-new), start and end in seconds from the rollout's start. */
  runs: { from: number; to: number; events: number }[];
  /** The largest site operation's history, against the issue's bound of 30 + 5 × hosts events. */
  siteHistory: {
    maxEvents: number;
    maxBytes: number;
    allowedEvents: number;
    byEvents: Record<string, number>;
    largest: LargestHistory[];
  };
  /** Sampled sites' own time, mean and max, by part. */
  siteTime: Record<string, { mean: number; max: number }>;
  progressQueries: {
    asked: number;
    failed: number;
    over2s: number;
    p50Ms: number;
    maxMs: number;
    errors: Record<string, number>;
  };
  rolloutRuns: number;
  counts: Record<string, number>;
  activities: WorkerStats;
  sim: SimStats;
  loadBefore: number;
  seedSeconds: number;
  /** The worker processes' peak RSS summed. */
  workersRssMB: number;
}

const round = (v: number, digits = 1) => Math.round(v * 10 ** digits) / 10 ** digits;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? 0;
}

const ms = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
  Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;

function commit(): string {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

/** gRPC's status code RESOURCE_EXHAUSTED. */
const resourceExhausted = 8;

/**
 * The rollout's result, waited for through the server's long poll. A rollout busy with thousands of site reports
 * answers RESOURCE_EXHAUSTED ("Workflow is busy") for a while: the client gives up on it, the benchmark waits on.
 */
async function rolloutResult(handle: WorkflowHandle): Promise<RolloutResult> {
  for (;;) {
    try {
      return (await handle.result()) as RolloutResult;
    } catch (err) {
      const code = (err instanceof Error && (err.cause as { code?: unknown } | undefined)?.code) ?? undefined;
      if (code !== resourceExhausted) throw err;
      await sleep(1000);
    }
  }
}

if (opts.temporal !== 'dev' && opts.temporal !== 'postgres') {
  throw new Error(`--temporal must be dev or postgres, not "${opts.temporal}"`);
}

/** key=value with a JSON value (true, 128000, "text"), as the dev server's --dynamic-config-value takes it. */
function dynamicConfigValues(values: string[]): Record<string, unknown> {
  return Object.fromEntries(
    values.map((kv) => {
      const at = kv.indexOf('=');
      return [kv.slice(0, at), JSON.parse(kv.slice(at + 1)) as unknown];
    }),
  );
}

async function startServer(scenario: string): Promise<{ env: TestWorkflowEnvironment; pid: number }> {
  // Either server inherits this process's environment.
  for (const kv of serverEnv) {
    const at = kv.indexOf('=');
    process.env[kv.slice(0, at)] = kv.slice(at + 1);
  }
  if (opts.temporal === 'dev') return startTemporalServer(serverConfig.flatMap((kv) => ['--dynamic-config-value', kv]));
  const dir = mkdtempSync(join(tmpdir(), 'icn-fleet-temporal-'));
  // Named for the scenario and this process: a run that was interrupted leaves its pair, which the next run drops.
  const server = await startTemporalPostgres({
    dir,
    namespace: testNamespace,
    database: `icn_bench_${scenario.replace(/[^a-z0-9]/gi, '_').toLowerCase()}_${process.pid}`,
    historyShards: Number(opts.historyShards),
    dynamicConfig: dynamicConfigValues(serverConfig),
    log: (m) => {
      console.log(`[temporal-postgres] ${m}`);
    },
  });
  const stop = async () => {
    await server.stop();
    await server.dropDatabases();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await dropInterruptedRunsDatabases();
  } catch (err) {
    await stop();
    throw err;
  }
  const env = await testEnvironmentOn(server.address, server.namespace, stop);
  return { env, pid: server.process.pid ?? 0 };
}

/** Database pairs of earlier runs on PostgreSQL whose process is gone (interrupted: Ctrl-C kills, it does not clean). */
async function dropInterruptedRunsDatabases(): Promise<void> {
  const info = labPeer('postgres') as PostgresLabInfo;
  const client = new pg.Client({ connectionString: postgresUrl(info) });
  await client.connect();
  try {
    const { rows } = await client.query<{ datname: string }>(
      "SELECT datname FROM pg_database WHERE datname ~ '^icn_bench_[a-z0-9_]+_[0-9]+(_visibility)?$'",
    );
    for (const { datname } of rows) {
      const pid = Number(/_(\d+)(?:_visibility)?$/.exec(datname)?.[1]);
      if (pid === process.pid || isAlive(pid)) continue;
      await client.query(`DROP DATABASE IF EXISTS ${datname}`);
      console.log(`dropped database ${datname}, left by an interrupted run (pid ${String(pid)})`);
    }
  } finally {
    await client.end();
  }
}

interface Child {
  process: ChildProcess;
  pid: number;
  exited: Promise<void>;
}

/** What an interrupted run must not leave behind: the worker, the simulation, the dev server. */
const live = { children: new Set<Child>(), server: undefined as number | undefined };
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    for (const c of live.children) c.process.kill('SIGKILL');
    if (live.server !== undefined) process.kill(live.server, 'SIGKILL');
    process.exit(130);
  });
}

function child(args: string[], env: Record<string, string>, ipc: boolean): Child {
  const proc = spawn(process.execPath, args, {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit', ...(ipc ? (['ipc'] as const) : [])],
  });
  const exited = new Promise<void>((resolve) => {
    proc.once('exit', () => {
      live.children.delete(c);
      resolve();
    });
  });
  const c: Child = { process: proc, pid: proc.pid ?? 0, exited };
  live.children.add(c);
  return c;
}

async function stop(c: Child): Promise<void> {
  if (c.process.exitCode === null) c.process.kill('SIGTERM');
  await Promise.race([c.exited, sleep(15_000)]);
  if (c.process.exitCode === null) c.process.kill('SIGKILL');
}

async function startSim(): Promise<Child & { info: SimServerInfo }> {
  const c = child([...opts.simNodeFlags.split(' ').filter(Boolean), 'test/sim/server.ts'], {}, false);
  const stdout = c.process.stdout;
  if (!stdout) throw new Error('the simulation has no stdout');
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: stdout }).once('line', resolve);
    void c.exited.then(() => {
      reject(new Error('the simulation server exited before it listened'));
    });
  });
  return { ...c, info: JSON.parse(line) as SimServerInfo };
}

async function simControl<T>(info: SimServerInfo, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${info.httpUrl}/control/${path}`, {
    method: body === undefined ? 'GET' : 'POST',
    ...(body !== undefined && { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) }),
  });
  if (!res.ok) throw new Error(`simulation /control/${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

const sumOf = (pids: number[], f: (pid: number) => number): number => pids.reduce((t, pid) => t + f(pid), 0);

/** CPU seconds by thread name, the worker processes' threads of one name summed. */
function workerThreadCpu(pids: number[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const pid of pids)
    for (const [name, v] of Object.entries(threadCpuSeconds(pid))) out[name] = (out[name] ?? 0) + v;
  return out;
}

/** The workers' counts summed; of latencies, counts summed, means weighted by count, the larger p99 and max. */
async function askWorkers(ws: Child[]): Promise<WorkerStats & { workers: number }> {
  const all = await Promise.all(ws.map(askWorker));
  const add = (into: Record<string, number>, from: Record<string, number>) => {
    for (const [k, v] of Object.entries(from)) into[k] = (into[k] ?? 0) + v;
  };
  const merged: WorkerStats & { workers: number } = {
    type: 'stats',
    workers: all.length,
    completed: 0,
    failed: 0,
    byType: {},
    maxRssMB: 0,
    cpuSeconds: 0,
    eventLoopDelay: { mean: 0, p99: 0, max: 0 },
    waits: {},
    statements: {},
    failures: {},
  };
  for (const st of all) {
    merged.completed += st.completed;
    merged.failed += st.failed;
    add(merged.byType, st.byType);
    add(merged.statements, st.statements);
    add(merged.failures, st.failures);
    merged.maxRssMB = Math.max(merged.maxRssMB, st.maxRssMB);
    merged.cpuSeconds += st.cpuSeconds;
    const d = merged.eventLoopDelay;
    merged.eventLoopDelay = {
      mean: Math.max(d.mean, st.eventLoopDelay.mean),
      p99: Math.max(d.p99, st.eventLoopDelay.p99),
      max: Math.max(d.max, st.eventLoopDelay.max),
    };
    for (const [k, w] of Object.entries(st.waits)) {
      const m = merged.waits[k] ?? { count: 0, mean: 0, p99: 0 };
      const count = m.count + w.count;
      merged.waits[k] = {
        count,
        mean: count === 0 ? 0 : round((m.mean * m.count + w.mean * w.count) / count),
        p99: Math.max(m.p99, w.p99),
      };
    }
  }
  return merged;
}

function askWorker(c: Child): Promise<WorkerStats> {
  return new Promise((resolve) => {
    const listener = (message: { type?: string }) => {
      if (message.type !== 'stats') return;
      c.process.off('message', listener);
      resolve(message as WorkerStats);
    };
    c.process.on('message', listener);
    c.process.send({ type: 'stats' });
  });
}

async function startWorker(env: Record<string, string>): Promise<Child> {
  const c = child([...workerNodeFlags.split(' ').filter(Boolean), 'test/bench/fleet-worker.ts'], env, true);
  await new Promise<void>((resolve, reject) => {
    c.process.on('message', (message: { type?: string }) => {
      if (message.type === 'ready') resolve();
    });
    void c.exited.then(() => {
      reject(new Error('the worker exited before it was ready'));
    });
  });
  return c;
}

async function listAll(env: TestWorkflowEnvironment, query: string): Promise<WorkflowExecutionInfo[]> {
  const out: WorkflowExecutionInfo[] = [];
  for await (const info of env.client.workflow.list({ query, pageSize: 1000 })) out.push(info);
  return out;
}

/** Where a site's own time went, in seconds, from its history (all its hosts' steps are `stepSeconds` each). */
interface SiteBreakdown {
  /** The rollout's start to this site's operation started (outside the site's own time). */
  startDelay: number;
  /** Start to the first host's activity scheduled: plan, artifacts and kubeconfig. */
  preamble: number;
  /** Of which: start to the first workflow task completed (the plan's and the kubeconfig's local activities). */
  firstTask: number;
  /** The artifacts' upload, scheduled to completed. */
  distribute: number;
  /** Its completion to the first host's activity scheduled: the workflow task in between. */
  toFirstHost: number;
  /** Host activities waiting in the task queue (schedule to start). */
  hostDispatch: number;
  /** Host activities' run time beyond their simulated steps: API calls, the BPA job's polling. */
  hostExcess: number;
  /** Of which: activity start to its BPA job started (node lookup, cordon, drain, key, job start). */
  beforeJob: number;
  /** The job's end to the BPM's first poll that saw it (the poll interval). */
  jobSeenLate: number;
  /** Then to the activity's end (reboot, Ready, uncordon, verify, record; completing the activity). */
  afterJob: number;
  /** One host's activity completed to the next one scheduled: the workflow task in between. */
  between: number;
  /** The last host done to the workflow closed: the record. */
  tail: number;
  total: number;
}

/** CPU seconds by thread spent between two readings of threadCpuSeconds. */
function threadsSince(before: Record<string, number>, now: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(now).map(([name, v]) => [name, v - (before[name] ?? 0)]));
}

/** Activity schedule-to-start latencies (ms), the history's size and where the site's time went. */
async function siteHistory(
  env: TestWorkflowEnvironment,
  sim: SimServerInfo,
  site: string,
  workflowId: string,
  stepSeconds: number,
  rolloutStarted: number,
) {
  const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
  const jobs = await simControl<SimJobTiming[]>(sim, `sites/${site}/jobs`);
  const events = history.events ?? [];
  const scheduled = new Map<string, { at: number; type: string; activityId: string }>();
  const started = new Map<string, number>();
  const latencies: number[] = [];
  const hosts: { scheduled: number; started: number; completed: number; job?: SimJobTiming }[] = [];
  let firstTaskDone: number | undefined;
  const distribute = { scheduled: 0, completed: 0 };
  for (const e of events) {
    const at = ms(e.eventTime);
    if (e.workflowTaskCompletedEventAttributes) firstTaskDone ??= at;
    const s = e.activityTaskScheduledEventAttributes;
    if (s) scheduled.set(String(e.eventId), { at, type: s.activityType?.name ?? '', activityId: s.activityId ?? '' });
    const st = e.activityTaskStartedEventAttributes;
    if (st) {
      const sch = scheduled.get(String(st.scheduledEventId));
      if (sch !== undefined) latencies.push(at - sch.at);
      started.set(String(st.scheduledEventId), at);
    }
    const done = e.activityTaskCompletedEventAttributes;
    const sch = done ? scheduled.get(String(done.scheduledEventId)) : undefined;
    if (done && sch?.type === 'distributeArtifacts') Object.assign(distribute, { scheduled: sch.at, completed: at });
    if (done && sch?.type === 'patchHost') {
      // The BPA job's id is derived from the activity's: `<workflow id>-<activity id>-install`.
      const job = jobs.find((j) => j.id.endsWith(`-${sch.activityId}-install`));
      hosts.push({
        scheduled: sch.at,
        started: started.get(String(done.scheduledEventId)) ?? sch.at,
        completed: at,
        ...(job && { job }),
      });
    }
  }
  const first = ms(events[0]?.eventTime);
  const last = ms(events.at(-1)?.eventTime);
  hosts.sort((a, b) => a.scheduled - b.scheduled);
  const sum = (f: (h: (typeof hosts)[number], i: number) => number) => hosts.reduce((t, h, i) => t + f(h, i), 0) / 1000;
  const firstHost = hosts[0]?.scheduled ?? last;
  const breakdown: SiteBreakdown = {
    startDelay: (first - rolloutStarted) / 1000,
    preamble: (firstHost - first) / 1000,
    firstTask: ((firstTaskDone ?? first) - first) / 1000,
    distribute: (distribute.completed - distribute.scheduled) / 1000,
    toFirstHost: distribute.completed === 0 ? 0 : (firstHost - distribute.completed) / 1000,
    hostDispatch: sum((h) => h.started - h.scheduled),
    hostExcess: sum((h) => h.completed - h.started - stepSeconds * 1000),
    beforeJob: sum((h) => (h.job ? h.job.createdAt - h.started : 0)),
    jobSeenLate: sum((h) => (h.job?.seenEndedAt === undefined ? 0 : h.job.seenEndedAt - h.job.endsAt)),
    afterJob: sum((h) => (h.job?.seenEndedAt === undefined ? 0 : h.completed - h.job.seenEndedAt)),
    between: sum((h, i) => (i === 0 ? 0 : h.scheduled - (hosts[i - 1]?.completed ?? h.scheduled))),
    tail: (last - (hosts.at(-1)?.completed ?? last)) / 1000,
    total: (last - first) / 1000,
  };
  const bytes = proto.temporal.api.history.v1.History.encode(history).finish().length;
  if (process.env.ICN_BENCH_TIMELINE === workflowId) {
    for (const e of events) {
      const kind = Object.keys(e).find((k) => k.endsWith('EventAttributes') && e[k as keyof typeof e]) ?? '?';
      console.log(`  ${((ms(e.eventTime) - first) / 1000).toFixed(3)} ${kind.replace('EventAttributes', '')}`);
    }
  }
  return { latencies, events: events.length, bytes, breakdown };
}

/** A site history among the largest: what its events were, so that one past the bound says why. */
interface LargestHistory {
  workflowId: string;
  events: number;
  /** Events by type, e.g. WorkflowTaskTimedOut: 2. */
  types: Record<string, number>;
  /** Each workflow task that timed out, with which timeout (sticky schedule-to-start, start-to-close). */
  taskTimeouts: string[];
  /** Every event: seconds since the first, its type, and for a workflow task's the queue or worker. */
  timeline: string[];
}

async function largestHistory(env: TestWorkflowEnvironment, workflowId: string): Promise<LargestHistory> {
  const events = (await env.client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
  const types: Record<string, number> = {};
  const taskTimeouts: string[] = [];
  const timeline: string[] = [];
  const first = ms(events[0]?.eventTime);
  for (const e of events) {
    const kind = (Object.keys(e).find((k) => k.endsWith('EventAttributes') && e[k as keyof typeof e]) ?? '?').replace(
      'EventAttributes',
      '',
    );
    types[kind] = (types[kind] ?? 0) + 1;
    const where =
      e.workflowTaskScheduledEventAttributes?.taskQueue?.name ?? e.workflowTaskStartedEventAttributes?.identity ?? '';
    timeline.push(`${((ms(e.eventTime) - first) / 1000).toFixed(2)} ${kind} ${where}`.trim());
    const timedOut = e.workflowTaskTimedOutEventAttributes;
    if (timedOut) {
      const type = proto.temporal.api.enums.v1.TimeoutType[timedOut.timeoutType ?? 0];
      taskTimeouts.push(`${type} at ${((ms(e.eventTime) - first) / 1000).toFixed(1)} s`);
    }
  }
  return { workflowId, events: events.length, types, taskTimeouts, timeline };
}

async function inBatches<T>(items: T[], size: number, each: (item: T) => Promise<void>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(each));
}

async function runScenario(
  s: Scenario,
  bundlePath: string,
): Promise<{ result: ScenarioResult; detail: ScenarioDetail }> {
  const loadBefore = loadAverage();
  console.log(
    `\n=== ${s.name}: ${s.sites} sites × ${s.hostsPerSite} hosts, maxConcurrency ${s.maxConcurrency}, ` +
      `hostStepSeconds ${s.hostStepSeconds}, bpaPollIntervalMs ${bpaPollMs() ?? 'default'} (load ${loadBefore})`,
  );
  const criticalPathSeconds = s.hostsPerSite * s.hostStepSeconds;
  const idealSeconds = Math.ceil(s.sites / s.maxConcurrency) * criticalPathSeconds;
  const [server, opened, simulation] = await Promise.allSettled([
    startServer(s.name),
    openTestStore('postgres'),
    startSim(),
  ]);
  if (server.status === 'rejected' || opened.status === 'rejected' || simulation.status === 'rejected') {
    if (server.status === 'fulfilled') await server.value.env.teardown();
    if (opened.status === 'fulfilled') await opened.value.close();
    if (simulation.status === 'fulfilled') await stop(simulation.value);
    const failed = [server, opened, simulation].find((r) => r.status === 'rejected');
    throw failed?.reason;
  }
  const { env, pid: serverPid } = server.value;
  const store = opened.value;
  const sim = simulation.value;
  live.server = serverPid;
  const workers: Child[] = [];
  try {
    const layout = simLayout(s.hostsPerSite);
    const behaviour: Partial<SimBehaviour> = { hostStepSeconds: s.hostStepSeconds };
    await simControl(sim.info, 'reset', { layout, behaviour });
    const seedStarted = performance.now();
    await seedProfiles(store);
    const names = Array.from({ length: s.sites }, (_, i) => `site-${String(i).padStart(5, '0')}`);
    await seedSites(store, sim.info, names, layout.hosts, { bench: 'fleet' });
    const seedSeconds = (performance.now() - seedStarted) / 1000;
    console.log(`inventory: ${s.sites} sites in ${seedSeconds.toFixed(1)} s`);
    const database = (await store.sql.query<{ db: string }>('SELECT current_database() AS db'))[0]?.db ?? '';
    const workerEnv = {
      ICN_BENCH_TEMPORAL_ADDRESS: env.address,
      ICN_BENCH_NAMESPACE: testNamespace,
      ICN_BENCH_TASK_QUEUE: taskQueue,
      ICN_BENCH_DATABASE_URL: postgresUrl(labPeer('postgres') as PostgresLabInfo, database),
      ICN_BENCH_ARTIFACT_DIR: store.artifacts.files.root,
      ICN_BENCH_WORKFLOW_BUNDLE: bundlePath,
      ICN_BENCH_WORKER_OPTIONS: JSON.stringify(workerTuning),
      ...(bpaPollMs() !== undefined && { ICN_BENCH_BPA_POLL_MS: String(bpaPollMs()) }),
      ICN_BENCH_PG_POOL: opts.pgPool,
      ...(!opts.sdkDefaults && { ICN_WORKER_WORKFLOW_STACK_TRACES: opts.workflowStackTraces }),
    };
    // Started one after another: each bundle's load is the machine's whole attention for a few seconds.
    for (let i = 0; i < Number(opts.workers); i++) workers.push(await startWorker(workerEnv));
    const pids = workers.map((w) => w.pid);
    const before = {
      worker: sumOf(pids, cpuSeconds),
      server: cpuSeconds(serverPid),
      sim: cpuSeconds(sim.pid),
      machine: machineCpuSeconds(),
      activities: (await askWorkers(workers)).completed,
      threads: workerThreadCpu(pids),
    };

    // The rollout's limits the options set; none: the product's own.
    const limits = Object.fromEntries(
      Object.entries({ bulkStartFrom: opts.bulkStartFrom, startsInFlight: opts.startsInFlight }).flatMap(([k, v]) =>
        v === undefined ? [] : [[k, Number(v)]],
      ),
    );
    const rolloutId = `fleet-${s.name.replace(/[^a-z0-9-]/gi, '-')}-${Date.now()}`.toLowerCase();
    const started = Date.now();
    const handle = await env.client.workflow.start('fleetRollout', {
      taskQueue,
      workflowId: `rollout/${rolloutId}`,
      args: [
        {
          rolloutId,
          request: RolloutRequest.parse({
            selector: { matchLabels: { bench: 'fleet' } },
            operation: 'patch',
            profile: { name: profileName, version: patchVersion },
            maxUnavailable: 1,
            ...(s.hostTakeoverSeconds !== undefined && { hostTakeoverSeconds: s.hostTakeoverSeconds }),
            // Every site runs to its end: a failure is counted and reported, not a reason to stop measuring.
            strategy: { maxConcurrency: s.maxConcurrency, maxFailures: '100%' },
          }),
          ...(Object.keys(limits).length > 0 && { limits }),
        },
      ],
    });
    const done = rolloutResult(handle);
    const ended = done.then(
      () => true,
      () => true,
    );
    // PostgreSQL serves this scenario's database from backends of its own (named after it): their CPU, by pid,
    // sampled often enough that a backend closed by an idle pool loses little.
    const pg = new Map<number, { first: number; last: number }>();
    const samplePg = () => {
      for (const pid of findProcesses((argv) => (argv[0] ?? '').includes(` ${database} `))) {
        const now = cpuSeconds(pid);
        const seen = pg.get(pid);
        if (seen) seen.last = now;
        else pg.set(pid, { first: now, last: now });
      }
    };
    samplePg();
    /** The rollout's progress as an operator asks for it while it runs: how long the answer took, and what failed. */
    const queries = { ms: [] as number[], failed: 0, errors: {} as Record<string, number> };
    let last = {
      at: started,
      worker: before.worker,
      server: before.server,
      sim: before.sim,
      steal: before.machine.steal,
      threads: before.threads,
    };
    for (let tick = 1; ; tick++) {
      if (await Promise.race([ended, sleep(2000).then(() => false)])) break;
      samplePg();
      if (tick % 5 !== 0) continue;
      const now = Date.now();
      const cpu = {
        worker: sumOf(pids, cpuSeconds),
        server: cpuSeconds(serverPid),
        sim: cpuSeconds(sim.pid),
        steal: machineCpuSeconds().steal,
      };
      const threads = workerThreadCpu(pids);
      const span = (now - last.at) / 1000;
      const pct = (k: 'worker' | 'server' | 'sim' | 'steal') => Math.round(((cpu[k] - last[k]) / span) * 100);
      const busiest = Object.entries(threadsSince(last.threads, threads))
        .sort((a, b) => b[1] - a[1])
        .slice(0, 3)
        .map(([name, v]) => `${name} ${Math.round((v / span) * 100)}%`)
        .join(', ');
      const asked = performance.now();
      const view = await handle.query<OperationProgress>(progressQuery).catch((err: unknown) => {
        const message = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
        queries.errors[message] = (queries.errors[message] ?? 0) + 1;
        return undefined;
      });
      queries.ms.push(Math.round(performance.now() - asked));
      if (!view) queries.failed++;
      const c = view?.counts ?? {};
      console.log(
        `  ${Math.round((now - started) / 1000)} s: ${c.succeeded ?? '?'} done, ${c.running ?? '?'} running, ` +
          `${c.failed ?? 0} failed (${view?.step ?? ''}); CPU worker ${pct('worker')}% server ${pct('server')}% ` +
          `sim ${pct('sim')}% steal ${pct('steal')}% (worker threads: ${busiest}); RSS worker ${sumOf(pids, rssMB)} MB server ${rssMB(serverPid)} MB`,
      );
      last = { at: now, ...cpu, threads };
    }
    const outcome = await done;
    const wallSeconds = (Date.now() - started) / 1000;
    samplePg();
    const activities = await askWorkers(workers);
    const machineAfter = machineCpuSeconds();
    const cpu = {
      worker: sumOf(pids, cpuSeconds) - before.worker,
      server: cpuSeconds(serverPid) - before.server,
      sim: cpuSeconds(sim.pid) - before.sim,
      postgres: [...pg.values()].reduce((t, p) => t + p.last - p.first, 0),
      machine: machineAfter.busy - before.machine.busy,
    };
    const stealSeconds = machineAfter.steal - before.machine.steal;
    const workerThreads = threadsSince(before.threads, workerThreadCpu(pids));
    // The issue's figure is a worker's: the larger peak of the processes (their sum is printed beside it).
    const workerMaxRssMB = Math.max(...pids.map(peakRssMB));
    const workersRssMB = sumOf(pids, peakRssMB);
    const serverMaxRssMB = peakRssMB(serverPid);
    const simStats = await simControl<SimStats>(sim.info, 'stats');
    console.log(
      `rollout: ${JSON.stringify(outcome.counts)} in ${wallSeconds.toFixed(1)} s (critical path ${criticalPathSeconds} s, ` +
        `ideal ${idealSeconds} s)`,
    );

    // Every site's close time and history size from visibility; latencies from a sample of histories.
    const sitesRun = await listAll(env, `WorkflowType = 'sitePatch' AND IcnRolloutId = '${rolloutId}'`);
    const runs = await listAll(env, `WorkflowId = 'rollout/${rolloutId}'`);
    const completions = sitesRun
      .flatMap((i) => (i.closeTime && i.status.name === 'COMPLETED' ? [(i.closeTime.getTime() - started) / 1000] : []))
      .sort((a, b) => a - b);
    const step = Math.max(1, Math.floor(sitesRun.length / Number(opts.sample)));
    const sample = sitesRun.filter((_, i) => i % step === 0).slice(0, Number(opts.sample));
    const latencies: number[] = [];
    let sampleEventsMax = 0;
    let sampleBytesMax = 0;
    const breakdowns: SiteBreakdown[] = [];
    await inBatches(sample, 8, async (info) => {
      const site = info.workflowId.split('/')[1] ?? '';
      const h = await siteHistory(env, sim.info, site, info.workflowId, s.hostStepSeconds, started);
      latencies.push(...h.latencies);
      breakdowns.push(h.breakdown);
      sampleEventsMax = Math.max(sampleEventsMax, h.events);
      sampleBytesMax = Math.max(sampleBytesMax, h.bytes);
    });
    latencies.sort((a, b) => a - b);
    const siteEvents = Math.max(sampleEventsMax, ...sitesRun.map((i) => i.historyLength));
    // The three largest site histories, told event by event type: a site past the bound shows what it repeated.
    const largest = await Promise.all(
      [...sitesRun]
        .sort((a, b) => b.historyLength - a.historyLength)
        .slice(0, 3)
        .map((i) => largestHistory(env, i.workflowId)),
    );
    const siteBytes = Math.max(sampleBytesMax, ...sitesRun.map((i) => i.historySize ?? 0));
    const all = [...sitesRun, ...runs];
    const result: ScenarioResult = {
      name: s.name,
      sites: s.sites,
      hostsPerSite: s.hostsPerSite,
      maxConcurrency: s.maxConcurrency,
      hostStepSeconds: s.hostStepSeconds,
      wallSeconds: round(wallSeconds),
      criticalPathSeconds,
      activitiesPerSecond: round((activities.completed - before.activities) / wallSeconds),
      scheduleToStartP50Ms: round(percentile(latencies, 50)),
      scheduleToStartP99Ms: round(percentile(latencies, 99)),
      maxHistoryEvents: Math.max(siteEvents, ...all.map((i) => i.historyLength)),
      maxHistoryBytes: Math.max(siteBytes, ...all.map((i) => i.historySize ?? 0)),
      workerMaxRssMB,
      serverMaxRssMB,
      hostTakeoverSeconds: s.hostTakeoverSeconds ?? defaultHostTakeoverSeconds,
      workers: workers.length,
      commit: commit(),
    };
    const detail: ScenarioDetail = {
      completions,
      idealSeconds,
      cpu: {
        worker: round(cpu.worker),
        server: round(cpu.server),
        sim: round(cpu.sim),
        postgres: round(cpu.postgres),
        machine: round(cpu.machine),
      },
      stealSeconds: round(stealSeconds),
      cpuMsPerHost: Object.fromEntries(
        Object.entries(cpu).map(([k, v]) => [k, Math.round((v * 1000) / (s.sites * s.hostsPerSite))]),
      ),
      workerThreads: Object.fromEntries(Object.entries(workerThreads).map(([k, v]) => [k, round(v)])),
      runs: runs
        .map((r) => ({
          from: round((r.startTime.getTime() - started) / 1000),
          to: round(((r.closeTime?.getTime() ?? Date.now()) - started) / 1000),
          events: r.historyLength,
        }))
        .sort((a, b) => a.from - b.from),
      siteHistory: {
        maxEvents: siteEvents,
        maxBytes: siteBytes,
        allowedEvents: 30 + 5 * s.hostsPerSite,
        // Sites by history length: more events than most had is a workflow task retried (timed out) or a step again.
        byEvents: sitesRun.reduce<Record<string, number>>((by, i) => {
          by[i.historyLength] = (by[i.historyLength] ?? 0) + 1;
          return by;
        }, {}),
        largest,
      },
      siteTime: Object.fromEntries(
        (Object.keys(breakdowns[0] ?? {}) as (keyof SiteBreakdown)[]).map((k) => [
          k,
          {
            mean: round(breakdowns.reduce((t, b) => t + b[k], 0) / breakdowns.length, 2),
            max: round(Math.max(...breakdowns.map((b) => b[k])), 2),
          },
        ]),
      ),
      progressQueries: {
        asked: queries.ms.length,
        failed: queries.failed,
        // The API waits 2 s for the answer (src/api/temporal-status.ts): slower ones it shows without progress.
        over2s: queries.ms.filter((m) => m > 2000).length,
        p50Ms: percentile(
          [...queries.ms].sort((a, b) => a - b),
          50,
        ),
        maxMs: Math.max(0, ...queries.ms),
        errors: queries.errors,
      },
      rolloutRuns: runs.length,
      counts: outcome.counts,
      activities,
      sim: simStats,
      loadBefore,
      seedSeconds: round(seedSeconds),
      workersRssMB,
    };
    console.log(
      JSON.stringify({
        ...result,
        ratio: round(wallSeconds / criticalPathSeconds, 3),
        vsIdeal: round(wallSeconds / idealSeconds, 3),
        ...detail,
        completions: undefined,
        sim: { ...simStats, requests: undefined },
        activities: { ...activities, type: undefined },
      }),
    );
    console.log(`simulation requests: ${JSON.stringify(simStats.requests)}`);
    return { result, detail };
  } finally {
    await Promise.all(
      workers.map(async (w) => {
        w.process.send({ type: 'stop' });
        await stop(w);
      }),
    );
    await stop(sim);
    await env.teardown();
    live.server = undefined;
    await store.close();
  }
}

quietTemporalRuntime();
const bundleDir = mkdtempSync(join(tmpdir(), 'icn-fleet-bench-'));
const bundlePath = join(bundleDir, 'workflows.js');
const bundle = await bundleWorkflowCode({
  workflowsPath,
  logger: quietLogger(),
  ...(opts.preload.length > 0 && { preloadModules: opts.preload }),
});
writeFileSync(bundlePath, bundle.code);
console.log(
  `fleet benchmark: ${selected.map((s) => s.name).join(', ')}; worker ${JSON.stringify(workerTuning)}, ` +
    `bpaPollIntervalMs ${opts.bpaPollMs ?? (opts.sdkDefaults ? 'default (2000)' : 'the host step / 20.5')}, ` +
    `server: ${opts.temporal === 'dev' ? 'dev server (SQLite)' : `on PostgreSQL, ${opts.historyShards} history shards`}, ` +
    `server config ${JSON.stringify(serverConfig)} env ${JSON.stringify(serverEnv)}, ` +
    `worker node flags "${workerNodeFlags}", ` +
    `workflow stack traces ${opts.sdkDefaults ? 'on' : opts.workflowStackTraces}, ` +
    `${opts.workers} worker process(es), PostgreSQL pool ${opts.pgPool} each, ` +
    `preloaded modules ${JSON.stringify(opts.preload)}. ` +
    'The profiles change only binary packages: Helm is not called.',
);
const results: ScenarioResult[] = [];
const series: ChartSeries[] = [];
const benchStarted = performance.now();
const runDate = new Date().toISOString();
/** The chart's lines beside the results, by scenario, so that --merge can draw the scenarios it keeps. */
const seriesFile = opts.out.replace(/\.json$/, '.series.json');
const kept: { results: ScenarioResult[]; series: Record<string, ChartSeries> } =
  opts.merge === true && existsSync(opts.out)
    ? {
        results: (JSON.parse(readFileSync(opts.out, 'utf8')) as { scenarios: ScenarioResult[] }).scenarios,
        series: existsSync(seriesFile)
          ? (JSON.parse(readFileSync(seriesFile, 'utf8')) as Record<string, ChartSeries>)
          : {},
      }
    : { results: [], series: {} };

/** Written after every scenario: a later one that fails or is interrupted loses none of those done. */
function writeResults(): object {
  // A kept scenario stays where it was; one run again takes its place.
  const ran = new Map(results.map((r, i) => [r.name, { result: r, series: series[i] }]));
  const order = [...new Set([...kept.results.map((r) => r.name), ...results.map((r) => r.name)])];
  const scenarios = order.flatMap((name) => ran.get(name)?.result ?? kept.results.find((r) => r.name === name) ?? []);
  const lines = Object.fromEntries(
    order.flatMap((name) => {
      const line = ran.has(name) ? ran.get(name)?.series : kept.series[name];
      return line ? [[name, line]] : [];
    }),
  );
  const output = { date: runDate, commit: commit(), cores: availableParallelism(), scenarios };
  mkdirSync(dirname(opts.out), { recursive: true });
  writeFileSync(opts.out, `${JSON.stringify(output, null, 2)}\n`);
  writeFileSync(seriesFile, `${JSON.stringify(lines)}\n`);
  writeFileSync(
    opts.out.replace(/\.json$/, '.svg'),
    lineChart({
      title: 'Fleet patch: sites completed over time',
      subtitle: `${output.cores} cores, commit ${output.commit.slice(0, 7)}, ${output.date.slice(0, 16)}; dashed: ceil(sites / maxConcurrency) × critical path`,
      xLabel: 'seconds since the rollout started',
      yLabel: '% of the scenario’s sites patched',
      yMax: 100,
      series: Object.values(lines),
    }),
  );
  return output;
}

try {
  for (const s of selected) {
    const { result, detail } = await runScenario(s, bundlePath);
    results.push(result);
    const points: [number, number][] = [[0, 0]];
    const every = Math.max(1, Math.floor(detail.completions.length / 400));
    detail.completions.forEach((t, i) => {
      if (i % every === 0 || i === detail.completions.length - 1)
        points.push([round(t), round(((i + 1) / s.sites) * 100)]);
    });
    series.push({
      name: `${s.name}: ${s.sites}×${s.hostsPerSite}, c ${s.maxConcurrency}, step ${s.hostStepSeconds} s`,
      points,
      marker: detail.idealSeconds,
    });
    writeResults();
  }
} finally {
  rmSync(bundleDir, { recursive: true, force: true });
}
console.log(JSON.stringify(writeResults(), null, 2));
console.log(`total ${((performance.now() - benchStarted) / 1000).toFixed(0)} s`);

function quietLogger() {
  const noop = () => undefined;
  return { trace: noop, debug: noop, info: noop, warn: noop, error: noop, log: noop };
}
