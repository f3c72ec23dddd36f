import { randomUUID } from 'node:crypto';
import { isDeepStrictEqual } from 'node:util';
import type { Labels } from '../domain/meta.ts';
import { profileArtifacts, type SoftwareProfileSpec } from '../domain/software-profile.ts';
import { StoreError } from './errors.ts';
import type { Sql } from './sql.ts';

interface Row {
  name: string;
  version: string;
  uid: string;
  // pg returns bigint columns as strings, PGlite as numbers or bigints.
  resource_version: string | number | bigint;
  labels: Labels;
  spec: SoftwareProfileSpec;
  created_at: Date | string;
}

export interface StoredProfile {
  metadata: { name: string; uid: string; resourceVersion: string; labels: Labels; creationTimestamp: string };
  spec: SoftwareProfileSpec;
}

const toProfile = (r: Row): StoredProfile => ({
  metadata: {
    name: r.name,
    uid: r.uid,
    resourceVersion: String(r.resource_version),
    labels: r.labels,
    creationTimestamp: new Date(r.created_at).toISOString(),
  },
  spec: r.spec,
});

/** Software profiles: immutable per version, so "site X runs edge-base 1.2.0" always means the same software. */
export class ProfileRepository {
  private readonly sql: Sql;

  constructor(sql: Sql) {
    this.sql = sql;
  }

  /** Creating the same name and version again with the same spec is an idempotent success; another spec is refused. */
  async create(
    meta: { name: string; labels?: Labels },
    spec: SoftwareProfileSpec,
  ): Promise<{ profile: StoredProfile; created: boolean }> {
    return this.sql.transaction(async (tx) => {
      const existing = (
        await tx.query<Row>('SELECT * FROM software_profiles WHERE name = $1 AND version = $2', [
          meta.name,
          spec.version,
        ])
      )[0];
      if (existing) {
        if (isDeepStrictEqual(existing.spec, JSON.parse(JSON.stringify(spec)))) {
          return { profile: toProfile(existing), created: false };
        }
        throw new StoreError(
          'Immutable',
          `software profile ${meta.name} ${spec.version} exists with another spec; profiles are immutable per version: publish a new version`,
          'spec.version',
        );
      }
      const digests = [...new Set(profileArtifacts(spec))];
      const found = await tx.query<{ sha256: string }>('SELECT sha256 FROM artifacts WHERE sha256 = ANY($1)', [
        digests,
      ]);
      const missing = digests.filter((d) => !found.some((f) => f.sha256 === d));
      if (missing.length > 0) {
        throw new StoreError(
          'MissingReference',
          `names artifacts that are not uploaded: ${missing.join(', ')}`,
          'spec',
        );
      }
      const rows = await tx.query<Row>(
        `INSERT INTO software_profiles (name, version, uid, resource_version, labels, spec)
         VALUES ($1, $2, $3, nextval('resource_version_seq'), $4, $5) RETURNING *`,
        [meta.name, spec.version, randomUUID(), meta.labels ?? {}, spec],
      );
      for (const d of digests) {
        await tx.query('INSERT INTO profile_artifacts (profile_name, profile_version, sha256) VALUES ($1, $2, $3)', [
          meta.name,
          spec.version,
          d,
        ]);
      }
      return { profile: toProfile(rows[0] as Row), created: true };
    });
  }

  async get(name: string, version: string): Promise<StoredProfile> {
    const row = (
      await this.sql.query<Row>('SELECT * FROM software_profiles WHERE name = $1 AND version = $2', [name, version])
    )[0];
    if (!row) throw new StoreError('NotFound', `software profile ${name} ${version} not found`);
    return toProfile(row);
  }

  /** The size in bytes of each artifact the profile references, by sha256: how long sending them may take. */
  async artifactSizes(name: string, version: string): Promise<Record<string, number>> {
    const rows = await this.sql.query<{ sha256: string; size: string | number }>(
      `SELECT a.sha256, a.size FROM profile_artifacts p JOIN artifacts a ON a.sha256 = p.sha256
       WHERE p.profile_name = $1 AND p.profile_version = $2`,
      [name, version],
    );
    return Object.fromEntries(rows.map((r) => [r.sha256, Number(r.size)]));
  }

  async list(name?: string): Promise<StoredProfile[]> {
    const rows = await this.sql.query<Row>(
      'SELECT * FROM software_profiles WHERE ($1::text IS NULL OR name = $1) ORDER BY name, created_at',
      [name ?? null],
    );
    return rows.map(toProfile);
  }

  /** Refused while a site runs or targets it. */
  async delete(name: string, version: string): Promise<void> {
    const sites = await this.sql.query<{ name: string }>(
      `SELECT name FROM resources WHERE kind = 'Site'
       AND ((spec->'softwareProfile'->>'name' = $1 AND spec->'softwareProfile'->>'version' = $2)
         OR (status->'installedProfile'->>'name' = $1 AND status->'installedProfile'->>'version' = $2))
       ORDER BY name`,
      [name, version],
    );
    if (sites.length > 0) {
      throw new StoreError(
        'InUse',
        `software profile ${name} ${version} is used by site(s) ${sites.map((s) => s.name).join(', ')}`,
      );
    }
    const rows = await this.sql.query('DELETE FROM software_profiles WHERE name = $1 AND version = $2 RETURNING name', [
      name,
      version,
    ]);
    if (rows.length === 0) throw new StoreError('NotFound', `software profile ${name} ${version} not found`);
  }
}
