/**
 * A real Temporal server (built from its Go module into the tools cache, every service in one process) on the
 * machine's PostgreSQL (the lab's `postgres` peer), as production runs it minus the replicas: the persistence and
 * visibility databases are created and their schemas set up or updated with Temporal's own temporal-sql-tool, the
 * server gets a generated configuration, then the project's namespace and search attributes are registered with the
 * temporal CLI, as an operator registers them on a production cluster.
 *
 *   node deploy/dev/temporal-postgres.ts      frontend on 127.0.0.1:7433 (TEMPORAL_POSTGRES_PORT), databases
 *                                             icn_temporal and icn_temporal_visibility, files in
 *                                             data/lab/temporal-postgres/; Ctrl-C stops it, the databases stay.
 *
 * Tests call startTemporalPostgres with databases and free ports of their own and drop the databases afterwards.
 * The PostgreSQL password reaches the server and the schema tool through their environment only: the configuration
 * file is a template that reads it (`# enable-template`), so it is in no file, argument list or log.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Connection } from '@temporalio/client';
import pg from 'pg';
import { searchAttributes } from '../../src/temporal/search-attributes.ts';
import { labUp } from './lab/index.ts';
import type { PostgresLabInfo } from './lab/postgres.ts';
import { type GoTool, temporalCli, temporalServer, toolPath } from './tools.ts';

export interface TemporalPostgresOptions {
  /** Where the configuration, dynamic configuration and the server's log go. */
  dir: string;
  /** The frontend's gRPC port; 0 (default): a free one. The server's other ports are always free ones. */
  port?: number;
  namespace?: string;
  /** The persistence database; visibility goes to `<database>_visibility`. Default icn_temporal. */
  database?: string;
  /** History shards: fixed when the database is first set up. Default 4. */
  historyShards?: number;
  /** The server's log level (debug, info, warn, error). Default warn. */
  logLevel?: string;
  /** Extra dynamic configuration, key → value (for every namespace). */
  dynamicConfig?: Record<string, unknown>;
  /** How long the server may take to answer and take the namespace. Default 120 s. */
  readyTimeoutMs?: number;
  /** Progress lines (default: stderr). */
  log?: (message: string) => void;
}

export interface TemporalPostgres {
  /** host:port of the frontend. */
  address: string;
  namespace: string;
  databases: { persistence: string; visibility: string };
  /** The server's output (zap JSON lines). */
  logFile: string;
  configFile: string;
  process: ChildProcess;
  /** SIGTERM, then SIGKILL after 20 s; resolves once the process is gone. */
  stop(): Promise<void>;
  /** Drops both databases (the server must be stopped). */
  dropDatabases(): Promise<void>;
}

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export class TemporalPostgresError extends Error {
  override name = 'TemporalPostgresError';
}

async function portFree(port: number): Promise<boolean> {
  const server = createServer();
  const free = await new Promise<boolean>((resolve) => {
    server.once('error', () => {
      resolve(false);
    });
    server.listen(port, '127.0.0.1', () => {
      resolve(true);
    });
  });
  if (free) {
    await new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
  }
  return free;
}

/**
 * A free loopback port below 32768: the server records its membership ports in a PostgreSQL smallint column
 * (cluster_membership.rpc_port), so the kernel's ephemeral ports (32768 and up) make it fail at start.
 */
async function freePort(taken: Set<number>): Promise<number> {
  for (let i = 0; i < 1000; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (taken.has(port) || !(await portFree(port))) continue;
    taken.add(port);
    return port;
  }
  throw new TemporalPostgresError('no free port between 20000 and 32000');
}

async function labPostgres(): Promise<PostgresLabInfo> {
  const [status] = await labUp(['postgres']);
  if (!status?.info) {
    throw new TemporalPostgresError(`lab peer "postgres" is not available: ${status?.error ?? 'unknown error'}`);
  }
  return status.info as PostgresLabInfo;
}

const passwordOf = (info: PostgresLabInfo) => readFileSync(info.passwordFile, 'utf8').trim();

/** Database names go into SQL and YAML unquoted: keep them to what needs no quoting. */
function checkDatabaseName(name: string): void {
  if (!/^[a-z_][a-z0-9_]{0,50}$/.test(name)) {
    throw new TemporalPostgresError(`database name "${name}" must be lower-case letters, digits and _ (at most 51)`);
  }
}

/**
 * Creates the database if missing, then brings its schema to the version this server needs: setup-schema -v 0.0
 * (the version tables; skipped once a version is recorded), update-schema from the schema files compiled into the
 * tool. Both are idempotent, so this runs at every start, and after a server upgrade it applies the new versions.
 */
async function setUpSchema(info: PostgresLabInfo, database: string, schemaName: string): Promise<void> {
  const tool = toolPath(temporalServer, 'temporal-sql-tool');
  const env = {
    ...process.env,
    SQL_PLUGIN: 'postgres12',
    SQL_HOST: info.host,
    SQL_PORT: String(info.port),
    SQL_USER: info.user,
    SQL_PASSWORD: passwordOf(info),
    SQL_DATABASE: database,
  };
  const steps = [
    // Connects to the lab's own database to create the new one; an existing one is fine.
    ['create-database', '--defaultdb', info.database],
    ['setup-schema', '-v', '0.0'],
    ['update-schema', '--schema-name', schemaName],
  ];
  for (const args of steps) {
    try {
      await run(tool, args, { env, maxBuffer: 16 * 2 ** 20 });
    } catch (err) {
      const e = err as { stderr?: string; stdout?: string; message: string };
      throw new TemporalPostgresError(
        `temporal-sql-tool ${args.join(' ')} on database ${database} failed: ${e.stderr || e.stdout || e.message}`,
        { cause: err },
      );
    }
  }
}

function serverConfig(o: {
  info: PostgresLabInfo;
  persistence: string;
  visibility: string;
  shards: number;
  logLevel: string;
  dynamicConfigFile: string;
  ports: Record<
    | 'frontend'
    | 'frontendHttp'
    | 'frontendRing'
    | 'history'
    | 'historyRing'
    | 'matching'
    | 'matchingRing'
    | 'worker'
    | 'workerRing',
    number
  >;
}): string {
  const store = (database: string, maxConns: number) => `
      sql:
        pluginName: postgres12
        databaseName: ${database}
        connectAddr: "${o.info.host}:${o.info.port}"
        connectProtocol: tcp
        user: ${o.info.user}
        password: {{ env "ICN_TEMPORAL_SQL_PASSWORD" | quote }}
        maxConns: ${maxConns}
        maxIdleConns: ${maxConns}
        maxConnLifetime: 1h`;
  const service = (grpc: number, ring: number, http?: number) => `
    rpc:
      grpcPort: ${grpc}
      membershipPort: ${ring}
      bindOnLocalHost: true${http === undefined ? '' : `\n      httpPort: ${http}`}`;
  // The machine's PostgreSQL allows 100 connections, shared with the inventories and other tests: each of the four
  // services opens its own pools, so they stay small (at most 4 × (8 + 3)).
  return `# enable-template
# Generated by deploy/dev/temporal-postgres.ts: the Temporal server on the machine's PostgreSQL.
log:
  stdout: true
  level: ${o.logLevel}
  format: json
persistence:
  defaultStore: postgres-default
  visibilityStore: postgres-visibility
  numHistoryShards: ${o.shards}
  datastores:
    postgres-default:${store(o.persistence, 8)}
    postgres-visibility:${store(o.visibility, 3)}
global:
  membership:
    maxJoinDuration: 30s
    broadcastAddress: 127.0.0.1
services:
  frontend:${service(o.ports.frontend, o.ports.frontendRing, o.ports.frontendHttp)}
  history:${service(o.ports.history, o.ports.historyRing)}
  matching:${service(o.ports.matching, o.ports.matchingRing)}
  worker:${service(o.ports.worker, o.ports.workerRing)}
clusterMetadata:
  enableGlobalNamespace: false
  failoverVersionIncrement: 10
  masterClusterName: active
  currentClusterName: active
  clusterInformation:
    active:
      enabled: true
      initialFailoverVersion: 1
      rpcName: frontend
      rpcAddress: 127.0.0.1:${o.ports.frontend}
      httpAddress: 127.0.0.1:${o.ports.frontendHttp}
dcRedirectionPolicy:
  policy: noop
dynamicConfigClient:
  filepath: ${JSON.stringify(o.dynamicConfigFile)}
  pollInterval: 10s
`;
}

function dynamicConfigYaml(values: Record<string, unknown>): string {
  return Object.entries(values)
    .map(([key, value]) => `${key}:\n  - value: ${JSON.stringify(value)}\n    constraints: {}\n`)
    .join('');
}

/** The last lines of the server's log, its JSON records shortened to level, message and error. */
function tail(file: string, lines = 12): string {
  if (!existsSync(file)) return '(no log)';
  return readFileSync(file, 'utf8')
    .trimEnd()
    .split('\n')
    .slice(-lines)
    .map((line) => {
      try {
        const r = JSON.parse(line) as { level?: string; msg?: string; error?: string };
        return `${r.level ?? '?'}: ${r.msg ?? ''}${r.error ? ` (${r.error})` : ''}`;
      } catch {
        return line;
      }
    })
    .map((line) => (line.length > 400 ? `${line.slice(0, 400)}…` : line))
    .join('\n');
}

/** Runs the temporal CLI against the server; resolves to its exit code and output. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(toolPath(temporalCli), args, { maxBuffer: 16 * 2 ** 20, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string; message: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? e.message };
  }
}

/**
 * The namespace and the project's search attributes, each created only when missing. A fresh namespace reaches every
 * service at its next namespace cache refresh (2 s by default): waited for, so that the first workflow start works.
 */
async function registerNamespace(address: string, namespace: string, deadline: number): Promise<void> {
  const at = ['--address', address, '--namespace', namespace];
  let created = false;
  for (;;) {
    const described = await cli(['operator', 'namespace', 'describe', ...at, '-o', 'json']);
    if (described.code === 0) break;
    const create = await cli(['operator', 'namespace', 'create', ...at, '--retention', '72h']);
    if (create.code === 0) created = true;
    // The services may still be joining their ring: "Not enough hosts to serve the request" and the like.
    if (Date.now() > deadline) {
      throw new TemporalPostgresError(
        `registering namespace ${namespace} failed: ${create.code === 0 ? described.stderr.trim() : create.stderr.trim()}`,
      );
    }
    await sleep(500);
  }
  for (;;) {
    const listed = await cli(['operator', 'search-attribute', 'list', ...at, '-o', 'json']);
    const names = new Set<string>();
    if (listed.code === 0) {
      const parsed = JSON.parse(listed.stdout) as { customAttributes?: Record<string, string> };
      for (const name of Object.keys(parsed.customAttributes ?? {})) names.add(name);
    }
    const missing = searchAttributes.filter((a) => !names.has(a.name));
    if (listed.code === 0 && missing.length === 0) break;
    if (missing.length > 0) {
      const create = await cli([
        'operator',
        'search-attribute',
        'create',
        ...at,
        ...missing.flatMap((a) => ['--name', a.name, '--type', 'Keyword']),
      ]);
      if (create.code === 0) created = true;
      if (Date.now() > deadline) {
        throw new TemporalPostgresError(
          `registering search attributes ${missing.map((a) => a.name).join(', ')} failed: ${create.stderr.trim()}`,
        );
      }
    }
    await sleep(500);
  }
  if (created) await sleep(4000);
}

async function waitForFrontend(
  address: string,
  exited: { code: number | null | undefined },
  deadline: number,
): Promise<void> {
  let lastError: unknown;
  while (Date.now() < deadline && exited.code === undefined) {
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        await connection.workflowService.getSystemInfo({});
        return;
      } finally {
        await connection.close();
      }
    } catch (err) {
      lastError = err;
      await sleep(500);
    }
  }
  throw new Error(
    exited.code !== undefined ? `the server exited (${String(exited.code)})` : `no answer: ${String(lastError)}`,
  );
}

/**
 * Builds what the tools cache lacks (the server takes about 4 minutes the first time) in a child process, as
 * `npm run tools` does, so that the caller's event loop keeps running (a test's timers, a CLI's signals).
 */
async function ensureToolsBuilt(tools: GoTool[]): Promise<void> {
  const missing = tools.filter((t) => !t.binaries.every((b) => existsSync(toolPath(t, b))));
  if (missing.length === 0) return;
  const script = fileURLToPath(new URL('./tools.ts', import.meta.url));
  const child = spawn(process.execPath, [script, ...missing.map((t) => t.name)], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) {
    throw new TemporalPostgresError(
      `building ${missing.map((t) => `${t.name} ${t.version}`).join(', ')} failed (exit ${String(code)}; see above)`,
    );
  }
}

/** Builds the server if the tools cache lacks it, prepares the databases, starts it and waits until it serves. */
export async function startTemporalPostgres(opts: TemporalPostgresOptions): Promise<TemporalPostgres> {
  const log =
    opts.log ??
    ((m: string) => {
      console.error(`[temporal-postgres] ${m}`);
    });
  const namespace = opts.namespace ?? 'icn';
  const persistence = opts.database ?? 'icn_temporal';
  const visibility = `${persistence}_visibility`;
  checkDatabaseName(visibility);
  const readyTimeoutMs = opts.readyTimeoutMs ?? 120_000;
  await ensureToolsBuilt([temporalServer, temporalCli]);
  const info = await labPostgres();

  const started = Date.now();
  await setUpSchema(info, persistence, 'postgresql/v12/temporal');
  await setUpSchema(info, visibility, 'postgresql/v12/visibility');
  log(`databases ${persistence} and ${visibility} ready (${((Date.now() - started) / 1000).toFixed(1)} s)`);

  mkdirSync(opts.dir, { recursive: true, mode: 0o700 });
  const taken = new Set<number>();
  const port = () => freePort(taken);
  const ports = {
    frontend: opts.port !== undefined && opts.port !== 0 ? opts.port : await port(),
    frontendHttp: await port(),
    frontendRing: await port(),
    history: await port(),
    historyRing: await port(),
    matching: await port(),
    matchingRing: await port(),
    worker: await port(),
    workerRing: await port(),
  };
  const dynamicConfigFile = join(opts.dir, 'dynamicconfig.yaml');
  writeFileSync(
    dynamicConfigFile,
    dynamicConfigYaml({
      // Workflow ids are business keys such as site/<name>/<operation>; rollout/<uuid> and the like.
      'limit.maxIDLength': 255,
      ...opts.dynamicConfig,
    }),
  );
  const configFile = join(opts.dir, 'config.yaml');
  writeFileSync(
    configFile,
    serverConfig({
      info,
      persistence,
      visibility,
      shards: opts.historyShards ?? 4,
      logLevel: opts.logLevel ?? 'warn',
      dynamicConfigFile,
      ports,
    }),
    { mode: 0o600 },
  );
  const logFile = join(opts.dir, 'server.log');
  const out = openSync(logFile, 'a');
  const child = spawn(
    toolPath(temporalServer, 'temporal-server'),
    ['--config-file', configFile, '--allow-no-auth', 'start'],
    {
      env: { ...process.env, ICN_TEMPORAL_SQL_PASSWORD: passwordOf(info) },
      stdio: ['ignore', out, out],
    },
  );
  closeSync(out);
  const exited: { code: number | null | undefined } = { code: undefined };
  const gone = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      exited.code = code ?? (signal ? -1 : null);
      resolve();
    });
  });
  const stop = async () => {
    if (exited.code === undefined) child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
    await gone;
    clearTimeout(timer);
  };
  // The server must not outlive whoever started it (a test that crashed, an interrupted CLI).
  const onExit = () => {
    if (exited.code === undefined) child.kill('SIGKILL');
  };
  process.once('exit', onExit);

  const address = `127.0.0.1:${ports.frontend}`;
  const deadline = Date.now() + readyTimeoutMs;
  try {
    await waitForFrontend(address, exited, deadline);
    log(`frontend answers at ${address} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
    await registerNamespace(address, namespace, deadline);
  } catch (err) {
    await stop();
    process.off('exit', onExit);
    throw new TemporalPostgresError(
      `the Temporal server on PostgreSQL (${toolPath(temporalServer, 'temporal-server')}, databases ${persistence} and ` +
        `${visibility}) did not come up at ${address}: ${err instanceof Error ? err.message : String(err)}\n` +
        `Its log is ${logFile}; last lines:\n${tail(logFile)}`,
      { cause: err },
    );
  }
  log(`namespace ${namespace} and search attributes registered (${((Date.now() - started) / 1000).toFixed(1)} s)`);

  return {
    address,
    namespace,
    databases: { persistence, visibility },
    logFile,
    configFile,
    process: child,
    stop: async () => {
      await stop();
      process.off('exit', onExit);
    },
    dropDatabases: async () => {
      const client = new pg.Client({
        host: info.host,
        port: info.port,
        user: info.user,
        password: passwordOf(info),
        database: info.database,
      });
      await client.connect();
      try {
        for (const db of [persistence, visibility]) await client.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
      } finally {
        await client.end();
      }
    },
  };
}

if (import.meta.main) {
  // Interrupted while starting: exiting stops the server too (its 'exit' hook).
  const early = () => process.exit(130);
  process.once('SIGINT', early);
  process.once('SIGTERM', early);
  const server = await startTemporalPostgres({
    dir: join(process.cwd(), 'data', 'lab', 'temporal-postgres'),
    port: Number(process.env.TEMPORAL_POSTGRES_PORT ?? 7433),
    namespace: process.env.TEMPORAL_NAMESPACE ?? 'icn',
    logLevel: process.env.TEMPORAL_POSTGRES_LOG_LEVEL ?? 'warn',
  });
  console.log(
    `Temporal on PostgreSQL at ${server.address} (namespace ${server.namespace}, databases ` +
      `${server.databases.persistence} and ${server.databases.visibility}); log ${server.logFile}\n` +
      `  e.g. TEMPORAL_ADDRESS=${server.address} DATABASE_URL=... npm run worker\nCtrl-C stops it; the databases stay.`,
  );
  process.off('SIGINT', early);
  process.off('SIGTERM', early);
  let stopping = false;
  const shutdown = () => {
    stopping = true;
    void server.stop().then(() => process.exit(0));
  };
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
  server.process.once('exit', (code) => {
    if (stopping) return;
    console.error(`the Temporal server exited (${String(code)}); see ${server.logFile}`);
    process.exit(1);
  });
}
