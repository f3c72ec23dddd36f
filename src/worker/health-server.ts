import { createServer, type Server } from 'node:http';
import type { Worker } from '@temporalio/worker';

/**
 * The worker's health for its orchestrator's probes, on its own port (the SDK core's metrics server says nothing of
 * the worker's state): 200 while the worker polls, 503 once it stops or fails, so that a wedged worker is restarted.
 */
export async function startWorkerHealth(
  worker: Pick<Worker, 'getState'>,
  opts: { port: number; host?: string },
): Promise<{ server: Server; port: number; close: () => Promise<void> }> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/healthz' && req.url !== '/readyz')) {
      res.writeHead(404).end();
      return;
    }
    const state = worker.getState();
    const ok = state === 'RUNNING';
    res.writeHead(ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ state }));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port, opts.host ?? '0.0.0.0', resolve);
  });
  const address = server.address();
  return {
    server,
    port: typeof address === 'object' && address !== null ? address.port : opts.port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      }),
  };
}
