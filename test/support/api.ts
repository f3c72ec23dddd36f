import { Client, Connection } from '@temporalio/client';
import { buildApi } from '../../src/api/server.ts';
import { parseConfig } from '../../src/domain/config.ts';
import { createLogger } from '../../src/observability/logger.ts';
import type { Store } from '../../src/store/index.ts';
import { openTestStore } from './store.ts';
import { createTestWorker, startTemporal, uniqueName } from './temporal.ts';
import { testEnv } from './test-codec-keys.ts';

export const tokens = {
  admin: 'admin-token-0123456789abcdef',
  writer: 'writer-token-0123456789abcdef',
  reader: 'reader-token-0123456789abcdef',
  operator: 'operator-token-0123456789abcdef',
};

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/**
 * The API over a given store. Without a Temporal client it gets a lazy one that never dials, for tests of routes that
 * do not start workflows.
 */
export async function buildTestApi(opts: { store: Store; temporal?: Client; env?: Record<string, string> }) {
  const config = parseConfig(
    testEnv({
      ICN_API_TOKENS: `${tokens.admin}=admin,${tokens.writer}=read|write,${tokens.reader}=read,${tokens.operator}=read|operate`,
      ...opts.env,
    }),
  );
  const temporal = opts.temporal ?? new Client({ connection: Connection.lazy({ address: '127.0.0.1:1' }) });
  return buildApi({ config, temporal, store: opts.store, logger: createLogger({ level: 'silent', name: 'test' }) });
}

/**
 * The whole global controller of a test: the real Temporal dev server, a worker of the project's workflows on its own
 * task queue, an embedded store and the API, stopped together.
 */
export async function startApiStack(activities?: Parameters<typeof createTestWorker>[2]) {
  const env = await startTemporal();
  const taskQueue = uniqueName('api');
  const worker = await createTestWorker(env, taskQueue, activities);
  const running = worker.run();
  const store = await openTestStore('pglite');
  const api = await buildTestApi({ store, temporal: env.client, env: { ICN_TASK_QUEUE: taskQueue } });
  return {
    env,
    store,
    api,
    stop: async () => {
      await api.close();
      worker.shutdown();
      await running;
      await store.close();
      await env.teardown();
    },
  };
}
