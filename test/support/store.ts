import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labUp } from '../../deploy/dev/lab/index.ts';
import { type PostgresLabInfo, postgresUrl } from '../../deploy/dev/lab/postgres.ts';
import { openStore, type Store } from '../../src/store/index.ts';
import { postgres } from '../../src/store/sql.ts';
import { labPeer } from './lab.ts';
import { testCodecKeys } from './test-codec-keys.ts';

export type Backend = 'pglite' | 'postgres';

/**
 * A fresh store on the given backend: PGlite in memory, or a new database of its own on the machine's PostgreSQL
 * (lab peer "postgres"), dropped again by close(), which removes its artifact folder too.
 */
export async function openTestStore(backend: Backend, maxArtifactBytes = 64 * 1024 * 1024): Promise<Store> {
  const artifactDir = mkdtempSync(join(tmpdir(), 'icn-artifacts-'));
  const common = { dataDir: undefined, artifactDir, maxArtifactBytes, secretKeys: testCodecKeys };
  // Closing also cleans up what the store was given: `after` (its database), then its artifact folder.
  const closing = (store: Store, after: () => Promise<void> = async () => undefined): Store => ({
    ...store,
    close: async () => {
      await store.close();
      await after();
      rmSync(artifactDir, { recursive: true, force: true });
    },
  });
  if (backend === 'pglite') return closing(await openStore(common));
  await labUp(['postgres']);
  const info = labPeer('postgres') as PostgresLabInfo;
  const database = `icn_test_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
  const admin = postgres(postgresUrl(info));
  await admin.query(`CREATE DATABASE ${database}`);
  const store = await openStore({ ...common, databaseUrl: postgresUrl(info, database) });
  return closing(store, async () => {
    await admin.query(`DROP DATABASE ${database}`);
    await admin.close();
  });
}
