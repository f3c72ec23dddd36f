/**
 * `npm start`: the whole global controller on one machine: the Temporal dev server with its Web UI, the worker and
 * the trigger API, with dev secrets generated once. Ctrl-C stops all of them; if one dies, the others are stopped too.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import proto from '@temporalio/proto';
import { loadOrCreateDevSecrets } from './dev-secrets.ts';
import { sleep, waitUntil } from './lab/processes.ts';
import { startTemporalDevServer } from './temporal-dev-server.ts';
import { ensureGoTool, helm, toolPath } from './tools.ts';

const { temporal: temporalProto } = proto;
const root = process.cwd();
const temporalPort = Number(process.env.TEMPORAL_PORT ?? 7233);
const uiPort = Number(process.env.TEMPORAL_UI_PORT ?? 8233);
const apiPort = Number(process.env.ICN_API_PORT ?? 8090);
const namespace = process.env.TEMPORAL_NAMESPACE ?? 'icn';
const apiUrl = `http://127.0.0.1:${apiPort}`;
const secretsFile = join(root, 'data', 'dev', 'secrets.env');

const secrets = loadOrCreateDevSecrets(secretsFile);
ensureGoTool(helm);
const started = Date.now();
const temporal = await startTemporalDevServer({
  dataDir: join(root, 'data', 'temporal'),
  port: temporalPort,
  uiPort,
  namespace,
  codecEndpoint: `${apiUrl}/codec`,
});

const env = {
  ...process.env,
  ...secrets,
  TEMPORAL_ADDRESS: temporal.address,
  TEMPORAL_NAMESPACE: namespace,
  ICN_API_PORT: String(apiPort),
  ICN_CODEC_CORS_ORIGINS: `http://127.0.0.1:${uiPort},http://localhost:${uiPort}`,
  // The dev server's Web UI has no login, so it cannot present a token to the codec endpoint.
  ICN_CODEC_ALLOW_ANONYMOUS: 'true',
  ICN_HELM_BINARY: toolPath(helm),
};
const children: ChildProcess[] = [];
let stopping = false;

function run(name: string, script: string): ChildProcess {
  const child = spawn(process.execPath, [script], { env, stdio: ['ignore', 'inherit', 'inherit'] });
  child.once('exit', (code, signal) => {
    if (!stopping) {
      console.error(`[start] ${name} exited (${signal ?? code}); stopping the stack`);
      void stop(1);
    }
  });
  children.push(child);
  return child;
}

async function stop(code: number): Promise<void> {
  if (stopping) return;
  stopping = true;
  console.error('[start] stopping the controller and Temporal…');
  await Promise.all(
    children.map(async (child) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await Promise.race([exited, sleep(10_000).then(() => child.kill('SIGKILL'))]);
    }),
  );
  await temporal.stop();
  process.exit(code);
}
process.on('SIGINT', () => void stop(0));
process.on('SIGTERM', () => void stop(0));

// The embedded store is one process's: the API and the worker run together.
run('controller', join(root, 'src', 'worker', 'controller.ts'));
await waitUntil(`the trigger API at ${apiUrl}`, async () => (await fetch(`${apiUrl}/healthz`)).ok, 60_000);
await waitForWorker();

/** The worker bundles the workflows before it polls: wait until it does, so the first request is served at once. */
async function waitForWorker(): Promise<void> {
  const connection = await Connection.connect({ address: temporal.address });
  try {
    await waitUntil(
      'the worker polling icn-global',
      async () => {
        const res = await connection.workflowService.describeTaskQueue({
          namespace,
          taskQueue: { name: process.env.ICN_TASK_QUEUE ?? 'icn-global' },
          taskQueueType: temporalProto.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        });
        return res.pollers.length > 0;
      },
      120_000,
    );
  } finally {
    await connection.close();
  }
}

console.log(`
icn-orchestrator is up (${((Date.now() - started) / 1000).toFixed(1)} s)
  Temporal server   ${temporal.address} (namespace ${namespace})
  Temporal Web UI   ${temporal.uiUrl ?? '(headless)'}  (decodes payloads through ${apiUrl}/codec)
  Trigger API       ${apiUrl}   health ${apiUrl}/healthz   OpenAPI ${apiUrl}/openapi.json   docs ${apiUrl}/docs
  Admin token       in ${secretsFile} (ICN_API_TOKENS)
Ctrl-C stops everything; Temporal's state stays in data/temporal/.
`);
