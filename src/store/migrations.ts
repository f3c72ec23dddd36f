import type { Sql } from './sql.ts';

/**
 * Append-only: a migration once released is never edited. Each runs in its own transaction and is recorded, so a
 * store opened by a newer release upgrades itself and an older one is never half-migrated.
 */
export const migrations: { version: number; name: string; sql: string }[] = [
  {
    version: 1,
    name: 'inventory',
    sql: `
      CREATE SEQUENCE resource_version_seq;

      -- Sites (and other mutable resources) by kind and name; resource_version orders every write.
      CREATE TABLE resources (
        kind text NOT NULL,
        name text NOT NULL,
        uid uuid NOT NULL,
        resource_version bigint NOT NULL,
        labels jsonb NOT NULL DEFAULT '{}',
        annotations jsonb NOT NULL DEFAULT '{}',
        spec jsonb NOT NULL,
        status jsonb,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (kind, name)
      );
      CREATE INDEX resources_labels ON resources USING gin (labels);

      CREATE TABLE artifacts (
        sha256 text PRIMARY KEY,
        type text NOT NULL,
        name text NOT NULL,
        version text NOT NULL,
        size bigint NOT NULL,
        metadata jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        UNIQUE (type, name, version)
      );

      -- Immutable per version: a profile row is written once.
      CREATE TABLE software_profiles (
        name text NOT NULL,
        version text NOT NULL,
        uid uuid NOT NULL,
        resource_version bigint NOT NULL,
        labels jsonb NOT NULL DEFAULT '{}',
        spec jsonb NOT NULL,
        created_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (name, version)
      );

      -- The database itself refuses to delete an artifact a profile references.
      CREATE TABLE profile_artifacts (
        profile_name text NOT NULL,
        profile_version text NOT NULL,
        sha256 text NOT NULL REFERENCES artifacts (sha256) ON DELETE RESTRICT,
        PRIMARY KEY (profile_name, profile_version, sha256),
        FOREIGN KEY (profile_name, profile_version) REFERENCES software_profiles (name, version) ON DELETE CASCADE
      );

      -- Encrypted at rest: only the type and key names are stored in clear.
      CREATE TABLE secrets (
        name text PRIMARY KEY,
        uid uuid NOT NULL,
        resource_version bigint NOT NULL,
        type text NOT NULL,
        keys text[] NOT NULL,
        key_id text NOT NULL,
        ciphertext bytea NOT NULL,
        labels jsonb NOT NULL DEFAULT '{}',
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
      );
    `,
  },
];

export async function migrate(sql: Sql): Promise<number[]> {
  await sql.query(
    'CREATE TABLE IF NOT EXISTS schema_migrations (version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())',
  );
  const applied: number[] = [];
  for (const m of migrations) {
    await sql.transaction(async (tx) => {
      // Two processes opening the same database at once: the lock makes the second wait and then skip.
      await tx.query('LOCK TABLE schema_migrations IN EXCLUSIVE MODE');
      const done = await tx.query('SELECT 1 FROM schema_migrations WHERE version = $1', [m.version]);
      if (done.length > 0) return;
      for (const statement of m.sql.split(/;\s*$/m).filter((s) => s.trim() !== '')) await tx.query(statement);
      await tx.query('INSERT INTO schema_migrations (version, name) VALUES ($1, $2)', [m.version, m.name]);
      applied.push(m.version);
    });
  }
  return applied;
}
