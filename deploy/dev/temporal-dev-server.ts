/**
 * The Temporal dev server: for development, state in a SQLite file under data/ (survives restarts) and the Web UI; for
 * tests, state in memory and no UI. Either way the project's namespace and search attributes are registered, and the
 * server is ready only once the namespace answers (the SDK's own launcher gives it a fixed 5 s, which a loaded 2-core
 * machine running two test files at once has missed).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { searchAttributes } from '../../src/temporal/search-attributes.ts';
import { ensureGoTool, temporalCli, toolPath } from './tools.ts';

export interface DevServerOptions {
  /** Where the SQLite file lives; without it the server keeps its state in memory. */
  dataDir?: string;
  port: number;
  /** The Web UI's port; without it the server runs headless. */
  uiPort?: number;
  namespace: string;
  codecEndpoint?: string;
  /** More arguments for `temporal server start-dev` (dynamic config values, for one). */
  extraArgs?: string[];
  /** Where the server's own output goes: the terminal in development, nowhere in tests (errors are kept either way). */
  output?: 'inherit' | 'quiet';
}

export interface DevServer {
  address: string;
  uiUrl?: string;
  process: ChildProcess;
  stop: () => Promise<void>;
}

const keywordType = 'Keyword';
/** Ample on a loaded 2-core machine; the SDK's own launcher allows 5 s. */
const readyTimeoutMs = 60_000;

export async function startTemporalDevServer(opts: DevServerOptions): Promise<DevServer> {
  ensureGoTool(temporalCli);
  if (opts.dataDir !== undefined) mkdirSync(opts.dataDir, { recursive: true });
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(opts.port),
    ...(opts.uiPort === undefined ? ['--headless'] : ['--ui-port', String(opts.uiPort)]),
    ...(opts.dataDir === undefined ? [] : ['--db-filename', join(opts.dataDir, 'temporal.sqlite')]),
    '--namespace',
    opts.namespace,
    '--log-level',
    'error',
    ...searchAttributes.flatMap((a) => ['--search-attribute', `${a.name}=${keywordType}`]),
    ...(opts.codecEndpoint ? ['--ui-codec-endpoint', opts.codecEndpoint] : []),
    ...(opts.extraArgs ?? []),
  ];
  const quiet = opts.output === 'quiet';
  const child = spawn(toolPath(temporalCli), args, { stdio: ['ignore', quiet ? 'ignore' : 'inherit', 'pipe'] });
  const stderr = tailOf(child, quiet);
  const address = `127.0.0.1:${opts.port}`;
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  // A test process that dies must not leave its server behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  const stop = async () => {
    process.off('exit', killOnExit);
    if (child.exitCode === null && child.signalCode === null) child.kill(quiet ? 'SIGKILL' : 'SIGTERM');
    await exited;
  };
  try {
    await waitForNamespace(address, opts.namespace, exited, readyTimeoutMs);
  } catch (err) {
    await stop();
    const output = stderr().trim();
    throw new Error(`${(err as Error).message}${output === '' ? '' : `; the server said: ${output}`}`, { cause: err });
  }
  return {
    address,
    ...(opts.uiPort === undefined ? {} : { uiUrl: `http://127.0.0.1:${opts.uiPort}` }),
    process: child,
    stop,
  };
}

/** The last 4 KiB the server wrote to stderr, passed on to the terminal unless quiet. */
function tailOf(child: ChildProcess, quiet: boolean): () => string {
  let tail = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    if (!quiet) process.stderr.write(chunk);
    tail = (tail + chunk.toString()).slice(-4096);
  });
  return () => tail;
}

async function waitForNamespace(
  address: string,
  namespace: string,
  exited: Promise<number | null>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const server = { exited: false };
  void exited.then(() => (server.exited = true));
  let lastError: unknown;
  while (Date.now() < deadline && !server.exited) {
    try {
      const connection = await Connection.connect({ address, connectTimeout: 1000 });
      try {
        await connection.workflowService.describeNamespace({ namespace });
        return;
      } finally {
        await connection.close();
      }
    } catch (err) {
      lastError = err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
  throw new Error(
    `Temporal dev server did not ${server.exited ? 'stay up' : `become ready in ${timeoutMs} ms`} at ${address}: ${String(lastError)}`,
  );
}

if (import.meta.main) {
  const server = await startTemporalDevServer({
    dataDir: join(process.cwd(), 'data', 'temporal'),
    port: Number(process.env.TEMPORAL_PORT ?? 7233),
    uiPort: Number(process.env.TEMPORAL_UI_PORT ?? 8233),
    namespace: process.env.TEMPORAL_NAMESPACE ?? 'icn',
  });
  console.log(`Temporal ${server.address}, Web UI ${server.uiUrl ?? '(none)'}`);
  process.on('SIGINT', () => void server.stop().then(() => process.exit(0)));
  process.on('SIGTERM', () => void server.stop().then(() => process.exit(0)));
}
