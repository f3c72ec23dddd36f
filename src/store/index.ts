import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { SiteSpec, SiteStatus } from '../domain/site.ts';
import { ArtifactFiles } from './artifact-files.ts';
import { ArtifactRepository } from './artifacts.ts';
import { migrate } from './migrations.ts';
import { ProfileRepository } from './profiles.ts';
import { ResourceRepository } from './resources.ts';
import { SecretRepository } from './secrets.ts';
import { pglite, postgres, type Sql } from './sql.ts';

export { StoreError } from './errors.ts';
export type { Sql } from './sql.ts';

export interface StoreOptions {
  /** PostgreSQL when set; otherwise PGlite under `dataDir/db` (or in memory when dataDir is undefined). */
  databaseUrl?: string | undefined;
  /** The PostgreSQL pool's connections (10 unless set). */
  databasePoolSize?: number;
  dataDir: string | undefined;
  artifactDir: string;
  maxArtifactBytes: number;
  secretKeys: { keys: Record<string, string>; activeKeyId: string };
}

export interface Store {
  sql: Sql;
  sites: ResourceRepository<SiteSpec, SiteStatus>;
  profiles: ProfileRepository;
  artifacts: ArtifactRepository;
  secrets: SecretRepository;
  close(): Promise<void>;
}

export async function openStore(opts: StoreOptions): Promise<Store> {
  let sql: Sql;
  if (opts.databaseUrl) {
    sql = postgres(opts.databaseUrl, { poolSize: opts.databasePoolSize ?? 10 });
  } else if (opts.dataDir === undefined) {
    sql = await pglite();
  } else {
    mkdirSync(opts.dataDir, { recursive: true });
    sql = await pglite(join(opts.dataDir, 'db'));
  }
  await migrate(sql);
  return {
    sql,
    sites: new ResourceRepository<SiteSpec, SiteStatus>(sql, 'Site'),
    profiles: new ProfileRepository(sql),
    artifacts: new ArtifactRepository(sql, new ArtifactFiles(opts.artifactDir, opts.maxArtifactBytes)),
    secrets: new SecretRepository(sql, opts.secretKeys),
    close: () => sql.close(),
  };
}
