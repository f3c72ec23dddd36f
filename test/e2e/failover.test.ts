// Needs: the Temporal server on PostgreSQL (temporal-server and temporal-sql-tool from the tools cache: built by
// deploy/dev/temporal-postgres.ts the first time, about 4 minutes), the machine's PostgreSQL (lab peer "postgres"),
// the simulated sites (test/sim, served from this process: every site's Ironic, BPA and Kubernetes APIs).
//
// The production shape on one machine: src/worker/main.ts and src/api/main.ts each run twice, as processes of their
// own, against that Temporal server and one PostgreSQL inventory. A fleet patch is started through one API as an
// operator would (POST /v1/rollouts); during it one worker and that API are killed with SIGKILL. The rollout must
// complete with every site patched (the rollout's result, each site's status in the inventory, each simulated
// host's installed versions), the other API must answer every request meanwhile, and the peers must have seen no
// operation twice. The figures go to bench/results/failover.json. ICN_FAILOVER_KILL=after-reboot kills the worker
// right after one of its hosts rebooted instead (see chooseVictim): a known repeat, the reboot, until patchHost's
// progress reaches the server before a kill can lose it.
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, hostname, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Client, Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { freePort } from '../../deploy/dev/lab/processes.ts';
import { startTemporalPostgres, type TemporalPostgres } from '../../deploy/dev/temporal-postgres.ts';
import { type PostgresLabInfo, postgresUrl } from '../../deploy/dev/lab/postgres.ts';
import { type RolloutResult, siteOperationId } from '../../src/domain/operations.ts';
import type { Store } from '../../src/store/index.ts';
import { dataConverter } from '../../src/temporal/connection.ts';
import { patchVersion, profileName, seedProfiles, seedSites, simLayout } from '../sim/inventory.ts';
import { type SimServer, startSimServer } from '../sim/server.ts';
import { labPeer } from '../support/lab.ts';
import { openTestStore } from '../support/store.ts';
import { uniqueName } from '../support/temporal.ts';
import { testCodecKeys, testEnv } from '../support/test-codec-keys.ts';

const { PendingActivityState } = proto.temporal.api.enums.v1;

/**
 * The size: two waves of 20 sites (maxConcurrency 20) of 3 hosts, each host's BPA job 4 s, so that the kill lands in
 * the first wave with most of the rollout still to run; about a minute without a kill.
 */
const size = { sites: 40, hostsPerSite: 3, hostStepSeconds: 4, maxConcurrency: 20, killAtSeconds: 10 };
/** patchHost's heartbeat timeout (src/workflows/site-activities-options.ts): when a dead worker's host step moves on. */
const heartbeatTimeoutSeconds = 150;

const root = fileURLToPath(new URL('../..', import.meta.url));
const workerMain = join(root, 'src/worker/main.ts');
const apiMain = join(root, 'src/api/main.ts');
const resultsFile = join(root, 'bench/results/failover.json');
const adminToken = 'failover-admin-token-0123456789';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const round = (v: number, digits = 1) => Math.round(v * 10 ** digits) / 10 ** digits;
const ms = (t: { seconds?: unknown; nanos?: number | null } | null | undefined) =>
  Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;

interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  /** The Temporal SDK's default worker identity: what histories and pending activities name it by. */
  identity: string;
  logFile: string;
  exited: Promise<void>;
  log(): string;
}

function startProcess(name: string, script: string, env: Record<string, string>, dir: string): Proc {
  const logFile = join(dir, `${name}.log`);
  const out = openSync(logFile, 'a');
  const child = spawn(process.execPath, [script], { env: { ...process.env, ...env }, stdio: ['ignore', out, out] });
  closeSync(out);
  const pid = child.pid ?? 0;
  const exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      resolve();
    });
  });
  return {
    name,
    child,
    pid,
    identity: `${pid}@${hostname()}`,
    logFile,
    exited,
    log: () => readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n'),
  };
}

/** Until `url` answers 200; a process that exits first or never answers fails with its log. */
async function waitReady(proc: Proc, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (proc.child.exitCode !== null) throw new Error(`${proc.name} exited (${proc.child.exitCode}):\n${proc.log()}`);
    const ok = await fetch(url, { signal: AbortSignal.timeout(2000) }).then(
      (r) => r.status === 200,
      () => false,
    );
    if (ok) return;
    await sleep(250);
  }
  throw new Error(
    `${proc.name} did not answer ${url} within ${timeoutMs / 1000} s; log ${proc.logFile}:\n${proc.log()}`,
  );
}

async function kill(proc: Proc): Promise<void> {
  if (proc.child.exitCode === null && proc.child.signalCode === null) proc.child.kill('SIGKILL');
  await proc.exited;
}

/** Requests to one API every 200 ms (without waiting for slow ones, at most 20 at once): every failure recorded. */
class ApiPoller {
  readonly failures: { at: number; path: string; error: string }[] = [];
  requests = 0;
  maxMs = 0;
  slowest = '';
  /** Requests that took over 3 s: when they started (epoch ms), what, how long. */
  readonly slow: { at: number; path: string; ms: number }[] = [];
  readonly #inFlight = new Set<Promise<void>>();
  readonly #base: string;
  #timer: NodeJS.Timeout | undefined;
  #paths: string[];
  #next = 0;

  constructor(base: string, paths: string[]) {
    this.#base = base;
    this.#paths = paths;
  }

  add(path: string): void {
    this.#paths = [...this.#paths, path];
  }

  start(): void {
    this.#timer = setInterval(() => {
      if (this.#inFlight.size >= 20) return;
      const path = this.#paths[this.#next++ % this.#paths.length] ?? '/healthz';
      const p = this.#request(path).finally(() => this.#inFlight.delete(p));
      this.#inFlight.add(p);
    }, 200);
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await Promise.all(this.#inFlight);
  }

  async #request(path: string): Promise<void> {
    const started = performance.now();
    this.requests++;
    try {
      const res = await fetch(`${this.#base}${path}`, {
        headers: { authorization: `Bearer ${adminToken}` },
        signal: AbortSignal.timeout(30_000),
      });
      await res.arrayBuffer();
      if (res.status !== 200) this.failures.push({ at: Date.now(), path, error: `HTTP ${res.status}` });
    } catch (err) {
      this.failures.push({ at: Date.now(), path, error: err instanceof Error ? err.message : String(err) });
    } finally {
      const took = performance.now() - started;
      if (took > 3000) this.slow.push({ at: Date.now() - took, path, ms: Math.round(took) });
      if (took > this.maxMs) {
        this.maxMs = took;
        this.slowest = `${path} at ${new Date().toISOString()}`;
      }
    }
  }
}

/** An activity that was running on the killed worker when it died, as the server saw it. */
interface Orphan {
  workflowId: string;
  activityId: string;
  activityType: string;
}

/** Every pending activity of the sites' patches, by the worker that runs it. */
async function runningActivities(client: Client, sites: string[]) {
  const found: (Orphan & { identity: string })[] = [];
  await Promise.all(
    sites.map(async (site) => {
      const workflowId = siteOperationId(site, 'patch');
      const d = await client.workflow
        .getHandle(workflowId)
        .describe()
        .catch(() => undefined);
      if (d?.status.name !== 'RUNNING') return;
      for (const a of d.raw.pendingActivities ?? []) {
        if (a.state !== PendingActivityState.PENDING_ACTIVITY_STATE_STARTED) continue;
        found.push({
          workflowId,
          activityId: a.activityId ?? '',
          activityType: a.activityType?.name ?? '',
          identity: a.lastWorkerIdentity ?? '',
        });
      }
    }),
  );
  return found;
}

/**
 * Which worker dies, and when (ICN_FAILOVER_KILL):
 * - `outside-reboot` (default): the worker running more host steps, at the first moment from killAtSeconds on when
 *   none of its hosts is between its BPA job's end and the end of its step. patchHost heartbeats what it has done,
 *   but the SDK sends heartbeats to the server at most once a minute (0.8 × the 2-minute timeout, capped at 60 s), so
 *   a retry after a kill in that window resumes from an older heartbeat. The reboot itself is recorded in the
 *   inventory (rebootedBy) and not repeated; the step may cordon the host again.
 * - `after-reboot`: the worker running the first host that has just been rebooted, at once: the case that once
 *   rebooted the host twice.
 */
type KillMode = 'outside-reboot' | 'after-reboot';
const killMode: KillMode = process.env.ICN_FAILOVER_KILL === 'after-reboot' ? 'after-reboot' : 'outside-reboot';

/** A host of the site is past its BPA job (or its job ends within 1.5 s) and its step has not ended. */
function inRebootWindow(sim: SimServer, name: string): boolean {
  const site = sim.sim.sites.get(name);
  if (!site) return false;
  const last = site.events?.at(-1) ?? '';
  if (/^(install end|reboot|uncordon) /.test(last)) return true;
  const soon = Date.now() + 1500;
  return [...site.jobs.values()].some((j) => j.results === undefined && j.endsAt <= soon);
}

async function chooseVictim(
  client: Client,
  sim: SimServer,
  names: string[],
  [a, b]: [Proc, Proc],
  mode: KillMode,
): Promise<{ victim: Proc; survivor: Proc; note: string }> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    if (Date.now() > deadline) throw new Error(`no moment to kill a worker (${mode}) within 30 s`);
    if (mode === 'after-reboot') {
      const site = names.find((n) => (sim.sim.sites.get(n)?.events?.at(-1) ?? '').startsWith('reboot '));
      const holder = site === undefined ? undefined : (await runningActivities(client, [site]))[0]?.identity;
      if (site === undefined || holder === undefined) {
        await sleep(5);
        continue;
      }
      const [victim, survivor] = holder === b.identity ? [b, a] : [a, b];
      return {
        victim,
        survivor,
        note: `it held ${site}, whose last step was: ${sim.sim.sites.get(site)?.events?.at(-1) ?? '?'}`,
      };
    }
    const running = await runningActivities(client, names);
    const onA = running.filter((r) => r.identity === a.identity);
    const onB = running.filter((r) => r.identity === b.identity);
    const [victim, survivor, held] = onB.length > onA.length ? [b, a, onB] : [a, b, onA];
    const sites = held.map((r) => r.workflowId.split('/')[1] ?? '');
    // Checked again right before the kill: a host's job ending in between would make the moment unsafe.
    if (held.length > 0 && !sites.some((site) => inRebootWindow(sim, site))) {
      return { victim, survivor, note: `${onA.length} / ${onB.length} host steps on a / b, none past its BPA job` };
    }
    await sleep(20);
  }
}

function commit(): string {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

let work: string;
let temporal: TemporalPostgres | undefined;
let store: Store | undefined;
let sim: SimServer | undefined;
let client: Client | undefined;
const procs: Proc[] = [];

afterAll(async () => {
  for (const p of procs) await kill(p);
  await client?.connection.close();
  await sim?.close();
  await store?.close();
  if (temporal) {
    await temporal.stop();
    await temporal.dropDatabases();
  }
  if (work) rmSync(work, { recursive: true, force: true });
}, 120_000);

describe('failover: two workers and two APIs on a Temporal server backed by PostgreSQL', () => {
  const names = Array.from({ length: size.sites }, (_, i) => `${uniqueName('fo')}-${String(i).padStart(2, '0')}`);
  const label = { failover: names[0] ?? 'fo' };
  const layout = simLayout(size.hostsPerSite);
  const workers: (Proc & { health: string })[] = [];
  const apis: { proc: Proc; url: string }[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'icn-failover-'));
    // A database pair of its own: nothing left from another run, nothing shared with a concurrent one.
    temporal = await startTemporalPostgres({
      dir: join(work, 'temporal'),
      database: `icn_temporal_${uniqueName('t').replaceAll('-', '_')}`,
      log: (m) => {
        console.log(`[temporal-postgres] ${m}`);
      },
    });
    client = new Client({
      connection: await Connection.connect({ address: temporal.address }),
      namespace: temporal.namespace,
      dataConverter: dataConverter(testCodecKeys),
    });
    store = await openTestStore('postgres');
    sim = await startSimServer(layout, {
      hostStepSeconds: size.hostStepSeconds,
      rebootSeconds: 1,
      podsPerHost: 2,
      recordEvents: true,
    });
    await seedProfiles(store);
    await seedSites(store, sim, names, layout.hosts, label);

    const database = (await store.sql.query<{ db: string }>('SELECT current_database() AS db'))[0]?.db;
    const common = testEnv({
      TEMPORAL_ADDRESS: temporal.address,
      TEMPORAL_NAMESPACE: temporal.namespace,
      DATABASE_URL: postgresUrl(labPeer('postgres') as PostgresLabInfo, database),
      ICN_ARTIFACT_DIR: store.artifacts.files.root,
      LOG_LEVEL: 'warn',
    });
    for (const name of ['worker-a', 'worker-b']) {
      const port = await freePort();
      const dataDir = join(work, name);
      mkdirSync(dataDir);
      const proc = startProcess(
        name,
        workerMain,
        { ...common, ICN_DATA_DIR: dataDir, ICN_WORKER_HEALTH_PORT: String(port) },
        work,
      );
      procs.push(proc);
      workers.push({ ...proc, health: `http://127.0.0.1:${port}/healthz` });
    }
    for (const name of ['api-a', 'api-b']) {
      const port = await freePort();
      const dataDir = join(work, name);
      mkdirSync(dataDir);
      const proc = startProcess(
        name,
        apiMain,
        { ...common, ICN_DATA_DIR: dataDir, ICN_API_PORT: String(port), ICN_API_TOKENS: `${adminToken}=admin` },
        work,
      );
      procs.push(proc);
      apis.push({ proc, url: `http://127.0.0.1:${port}` });
    }
    // Each worker bundles the workflows at start: tens of seconds on two busy cores.
    await Promise.all([
      ...workers.map((w) => waitReady(w, w.health, 180_000)),
      ...apis.map((a) => waitReady(a.proc, `${a.url}/healthz`, 60_000)),
    ]);
  }, 45 * 60_000);

  it(
    'a fleet patch completes through a worker and an API killed mid-way, nothing lost or repeated',
    async () => {
      if (!client || !store || !sim) throw new Error('setup did not complete');
      const [workerA, workerB] = workers;
      const [apiA, apiB] = apis;
      if (!workerA || !workerB || !apiA || !apiB) throw new Error('setup did not start every process');
      const firstSite = names[0] ?? '';
      // api-a survives; the rollout is started through api-b, which is killed.
      const poller = new ApiPoller(apiA.url, ['/healthz', `/v1/sites/${firstSite}`]);
      poller.start();

      const startedAt = Date.now();
      const res = await fetch(`${apiB.url}/v1/rollouts`, {
        method: 'POST',
        headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          selector: { matchLabels: label },
          operation: 'patch',
          profile: { name: profileName, version: patchVersion },
          maxUnavailable: 1,
          strategy: { maxConcurrency: size.maxConcurrency, maxFailures: 0, onFailureLimit: 'stop' },
        }),
      });
      expect(res.status).toBe(202);
      const { rolloutId } = (await res.json()) as { rolloutId: string };
      poller.add(`/v1/rollouts/${rolloutId}`);

      // The kill: a worker and the API that started the rollout. See killMode for which worker and when.
      await sleep(Math.max(0, startedAt + size.killAtSeconds * 1000 - Date.now()));
      const { victim, survivor, note } = await chooseVictim(client, sim, names, [workerA, workerB], killMode);
      const killedAt = Date.now();
      await Promise.all([kill(victim), kill(apiB.proc)]);
      const killAtSeconds = (killedAt - startedAt) / 1000;
      // What the server still has as started by the dead worker: the work it held.
      const orphans = (await runningActivities(client, names)).filter((a) => a.identity === victim.identity);
      console.log(
        `killed ${victim.name} (${note}) and api-b at ${killAtSeconds.toFixed(1)} s; ` +
          `${orphans.length} activities were running on ${victim.name}: ${[...new Set(orphans.map((o) => o.activityType))].join(', ')}`,
      );
      expect(orphans.length).toBeGreaterThan(0);

      const rollout = client.workflow.getHandle(`rollout/${rolloutId}`);
      const result = (await rollout.result()) as RolloutResult;
      const wallSeconds = (Date.now() - startedAt) / 1000;
      // A few more seconds of polling after the end: the survivor keeps answering.
      await sleep(3000);
      await poller.stop();
      expect(survivor.child.exitCode).toBeNull();
      expect([victim.child.signalCode, apiB.proc.child.signalCode]).toEqual(['SIGKILL', 'SIGKILL']);

      // Takeover: when the survivor started again each step the dead worker held (its retry, from the histories).
      const takeovers: number[] = [];
      const notTakenOver: string[] = [];
      for (const o of orphans) {
        const events = (await client.workflow.getHandle(o.workflowId).fetchHistory()).events ?? [];
        const scheduled = events.find((e) => e.activityTaskScheduledEventAttributes?.activityId === o.activityId);
        const started = events.find(
          (e) => String(e.activityTaskStartedEventAttributes?.scheduledEventId) === String(scheduled?.eventId),
        );
        const attrs = started?.activityTaskStartedEventAttributes;
        if (!attrs || attrs.identity !== survivor.identity || (attrs.attempt ?? 1) < 2) {
          notTakenOver.push(`${o.workflowId} ${o.activityType}#${o.activityId}: ${attrs?.identity ?? 'never started'}`);
          continue;
        }
        takeovers.push((ms(started.eventTime) - killedAt) / 1000);
      }
      // Workflows the dead worker held: a workflow task it had started and never completed (retried by the survivor
      // after the task's timeout), or a workflow in its cache (its next task first went to the dead worker's sticky
      // queue). For each, the wait of the first task after the kill until the survivor completed it.
      const workflowTakeovers: number[] = [];
      const workflowIds = [`rollout/${rolloutId}`, ...names.map((n) => siteOperationId(n, 'patch'))];
      for (const workflowId of workflowIds) {
        const events = (await client.workflow.getHandle(workflowId).fetchHistory()).events ?? [];
        const before = events.filter((e) => ms(e.eventTime) <= killedAt);
        const lastTask = before.findLast((e) => e.workflowTaskStartedEventAttributes);
        if (lastTask?.workflowTaskStartedEventAttributes?.identity !== victim.identity) continue;
        const after = events.slice(before.length);
        const scheduled = after.find((e) => e.workflowTaskScheduledEventAttributes);
        const completed = after.find((e) => e.workflowTaskCompletedEventAttributes?.identity === survivor.identity);
        if (completed) {
          const from = Math.max(killedAt, scheduled ? ms(scheduled.eventTime) : killedAt);
          workflowTakeovers.push((ms(completed.eventTime) - from) / 1000);
        }
      }

      // Real state: the rollout, the inventory, the simulated hosts.
      expect(result.counts).toMatchObject({ succeeded: size.sites });
      expect(result.failures).toEqual([]);
      const lost: string[] = [];
      for (const name of names) {
        const d = await client.workflow.getHandle(siteOperationId(name, 'patch')).describe();
        const { status } = await store.sites.get(name);
        const view = sim.sim.sites.get(name);
        const hostsPatched = layout.hosts.every((h, i) => {
          const host = view?.hosts[i];
          const recorded = status?.hosts?.[h.name]?.packages ?? {};
          return (
            host !== undefined &&
            !host.unschedulable &&
            layout.installed.every(
              (p) => host.packages.get(p.name)?.version === patchVersion && recorded[p.name] === patchVersion,
            )
          );
        });
        const ok =
          d.status.name === 'COMPLETED' &&
          status?.phase === 'Ready' &&
          status.installedProfile?.version === patchVersion &&
          hostsPatched;
        if (!ok) lost.push(`${name}: ${d.status.name}, ${JSON.stringify(status?.installedProfile)}`);
      }
      expect(lost).toEqual([]);

      // Nothing twice at the peers: per host, one BPA install job per package version, one reboot, one cordon; no
      // rollback.
      const duplicates: string[] = [];
      for (const name of names) {
        const site = sim.sim.sites.get(name);
        if (!site) continue;
        for (const h of layout.hosts) {
          for (const p of layout.installed) {
            const jobs = [...site.jobs.values()].filter(
              (j) =>
                j.action === 'install' &&
                j.hosts.includes(h.name) &&
                j.packages.some((q) => q.name === p.name && q.version === patchVersion),
            ).length;
            if (jobs !== 1) duplicates.push(`${name}/${h.name}: ${jobs} install jobs of ${p.name} ${patchVersion}`);
          }
          const events = site.events ?? [];
          for (const kind of ['reboot', 'cordon'] as const) {
            const count = events.filter((e) => e === `${kind} ${h.name}`).length;
            if (count !== 1) duplicates.push(`${name}/${h.name}: ${count} × ${kind}`);
          }
        }
        const rollbacks = [...site.jobs.values()].filter((j) => j.action === 'rollback').length;
        if (rollbacks > 0) duplicates.push(`${name}: ${rollbacks} rollback jobs`);
      }
      expect(sim.stats().unhandled).toEqual({});

      const figures = {
        date: new Date().toISOString(),
        commit: commit(),
        cores: availableParallelism(),
        sites: size.sites,
        hostsPerSite: size.hostsPerSite,
        hostStepSeconds: size.hostStepSeconds,
        maxConcurrency: size.maxConcurrency,
        killAtSeconds: round(killAtSeconds),
        killMode,
        /** Kill → the last of the dead worker's running activities started again on the survivor. */
        takeoverSeconds: takeovers.length > 0 ? round(Math.max(...takeovers)) : null,
        /** Kill → the first of them started again. */
        firstTakeoverSeconds: takeovers.length > 0 ? round(Math.min(...takeovers)) : null,
        activitiesTakenOver: takeovers.length,
        /**
         * Workflows the dead worker had in its cache or mid-task: the longest wait of their first workflow task after
         * the kill (from the kill or the task's scheduling, whichever is later) until the survivor completed it.
         */
        workflowTaskTakeoverSeconds: workflowTakeovers.length > 0 ? round(Math.max(...workflowTakeovers)) : null,
        workflowTasksTakenOver: workflowTakeovers.length,
        heartbeatTimeoutSeconds,
        operationsLost: lost.length + notTakenOver.length,
        duplicatesAtPeers: duplicates.length,
        apiRequests: poller.requests,
        apiFailedRequests: poller.failures.length,
        apiSlowestMs: Math.round(poller.maxMs),
        apiSlowestRequest: poller.slowest,
        wallSeconds: round(wallSeconds),
      };
      mkdirSync(dirname(resultsFile), { recursive: true });
      writeFileSync(resultsFile, `${JSON.stringify(figures, null, 2)}\n`);
      console.log(`failover figures (${resultsFile}):\n${JSON.stringify(figures, null, 2)}`);
      if (notTakenOver.length > 0) console.log(`not taken over:\n${notTakenOver.join('\n')}`);
      if (duplicates.length > 0) console.log(`repeated at the peers:\n${duplicates.join('\n')}`);
      if (poller.slow.length > 0) {
        const slow = poller.slow.map(
          (r) => `${r.path} sent ${((r.at - killedAt) / 1000).toFixed(1)} s after the kill: ${r.ms} ms`,
        );
        console.log(`API requests over 3 s:\n${slow.join('\n')}`);
      }
      if (poller.failures.length > 0) console.log(`API failures:\n${JSON.stringify(poller.failures, null, 1)}`);

      expect(notTakenOver).toEqual([]);
      expect(duplicates).toEqual([]);
      expect(poller.failures).toEqual([]);
    },
    10 * 60_000,
  );
});
