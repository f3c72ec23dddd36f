/**
 * The Temporal dev server for development: state in a SQLite file under data/ (survives restarts), the Web UI, the
 * project's namespace and search attributes registered.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import { searchAttributes } from '../../src/temporal/search-attributes.ts';
import { ensureGoTool, temporalCli, toolPath } from './tools.ts';

export interface DevServerOptions {
  dataDir: string;
  port: number;
  uiPort: number;
  namespace: string;
  codecEndpoint?: string;
}

export interface DevServer {
  address: string;
  uiUrl: string;
  process: ChildProcess;
  stop: () => Promise<void>;
}

const keywordType = 'Keyword';

export async function startTemporalDevServer(opts: DevServerOptions): Promise<DevServer> {
  ensureGoTool(temporalCli);
  mkdirSync(opts.dataDir, { recursive: true });
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(opts.port),
    '--ui-port',
    String(opts.uiPort),
    '--db-filename',
    join(opts.dataDir, 'temporal.sqlite'),
    '--namespace',
    opts.namespace,
    '--log-level',
    'error',
    ...searchAttributes.flatMap((a) => ['--search-attribute', `${a.name}=${keywordType}`]),
    ...(opts.codecEndpoint ? ['--ui-codec-endpoint', opts.codecEndpoint] : []),
  ];
  const child = spawn(toolPath(temporalCli), args, { stdio: ['ignore', 'inherit', 'inherit'] });
  const address = `127.0.0.1:${opts.port}`;
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  await waitForNamespace(address, opts.namespace, exited);
  return {
    address,
    uiUrl: `http://127.0.0.1:${opts.uiPort}`,
    process: child,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

async function waitForNamespace(address: string, namespace: string, exited: Promise<number | null>): Promise<void> {
  const deadline = Date.now() + 60_000;
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
    `Temporal dev server did not ${server.exited ? 'stay up' : 'become ready'} at ${address}: ${String(lastError)}`,
  );
}

if (import.meta.main) {
  const server = await startTemporalDevServer({
    dataDir: join(process.cwd(), 'data', 'temporal'),
    port: Number(process.env.TEMPORAL_PORT ?? 7233),
    uiPort: Number(process.env.TEMPORAL_UI_PORT ?? 8233),
    namespace: process.env.TEMPORAL_NAMESPACE ?? 'icn',
  });
  console.log(`Temporal ${server.address}, Web UI ${server.uiUrl}`);
  process.on('SIGINT', () => void server.stop().then(() => process.exit(0)));
  process.on('SIGTERM', () => void server.stop().then(() => process.exit(0)));
}
