import type { Readable } from 'node:stream';
import { finished } from 'node:stream/promises';
import type { ArtifactSpec, ArtifactType } from '../domain/artifact.ts';
import type { ArtifactFiles } from './artifact-files.ts';
import { StoreError } from './errors.ts';
import type { Sql } from './sql.ts';

interface Row {
  sha256: string;
  type: ArtifactType;
  name: string;
  version: string;
  size: string | number;
  metadata: Record<string, string>;
  created_at: Date | string;
}

export interface StoredArtifact extends ArtifactSpec {
  createdAt: string;
}

const toArtifact = (r: Row): StoredArtifact => ({
  sha256: r.sha256,
  type: r.type,
  name: r.name,
  version: r.version,
  size: Number(r.size),
  metadata: r.metadata,
  createdAt: new Date(r.created_at).toISOString(),
});

/** Artifact rows (what is visible) over content-addressed files (what is stored). */
export class ArtifactRepository {
  private readonly sql: Sql;
  readonly files: ArtifactFiles;

  constructor(sql: Sql, files: ArtifactFiles) {
    this.sql = sql;
    this.files = files;
  }

  /**
   * Stores the content, then records it. The same content declared again under the same name is an idempotent
   * success; a name and version already taken by other content is refused.
   */
  async upload(spec: ArtifactSpec, body: Readable): Promise<{ artifact: StoredArtifact; created: boolean }> {
    const existing = await this.find(spec.sha256);
    if (existing) {
      await discard(body);
      if (existing.type === spec.type && existing.name === spec.name && existing.version === spec.version) {
        return { artifact: existing, created: false };
      }
      throw new StoreError(
        'AlreadyExists',
        `this content is already stored as ${existing.type} ${existing.name} ${existing.version}`,
        'sha256',
      );
    }
    const taken = await this.sql.query<Row>('SELECT * FROM artifacts WHERE type = $1 AND name = $2 AND version = $3', [
      spec.type,
      spec.name,
      spec.version,
    ]);
    if (taken[0]) {
      await discard(body);
      throw new StoreError(
        'AlreadyExists',
        `${spec.type} ${spec.name} ${spec.version} already exists with sha256 ${taken[0].sha256}`,
        'version',
      );
    }
    await this.files.put(body, spec);
    const rows = await this.sql.query<Row>(
      `INSERT INTO artifacts (sha256, type, name, version, size, metadata) VALUES ($1, $2, $3, $4, $5, $6)
       ON CONFLICT DO NOTHING RETURNING *`,
      [spec.sha256, spec.type, spec.name, spec.version, spec.size, spec.metadata],
    );
    const row = rows[0];
    if (!row) {
      // A concurrent upload of the same content won the insert: report its row.
      const winner = await this.get(spec.sha256);
      return { artifact: winner, created: false };
    }
    return { artifact: toArtifact(row), created: true };
  }

  async find(sha256: string): Promise<StoredArtifact | undefined> {
    const row = (await this.sql.query<Row>('SELECT * FROM artifacts WHERE sha256 = $1', [sha256]))[0];
    return row ? toArtifact(row) : undefined;
  }

  async get(sha256: string): Promise<StoredArtifact> {
    const found = await this.find(sha256);
    if (!found) throw new StoreError('NotFound', `artifact ${sha256} not found`);
    return found;
  }

  async list(opts: { type?: ArtifactType; name?: string } = {}): Promise<StoredArtifact[]> {
    const rows = await this.sql.query<Row>(
      `SELECT * FROM artifacts WHERE ($1::text IS NULL OR type = $1) AND ($2::text IS NULL OR name = $2)
       ORDER BY type, name, version`,
      [opts.type ?? null, opts.name ?? null],
    );
    return rows.map(toArtifact);
  }

  /** Refused while a profile references it (the database's foreign key says so, whatever races). */
  async delete(sha256: string): Promise<void> {
    const users = await this.sql.query<{ profile_name: string; profile_version: string }>(
      'SELECT profile_name, profile_version FROM profile_artifacts WHERE sha256 = $1 ORDER BY 1, 2',
      [sha256],
    );
    if (users.length > 0) {
      const names = users.map((u) => `${u.profile_name}@${u.profile_version}`).join(', ');
      throw new StoreError('InUse', `artifact ${sha256} is referenced by software profile(s) ${names}`);
    }
    const rows = await this.sql.query('DELETE FROM artifacts WHERE sha256 = $1 RETURNING sha256', [sha256]);
    if (rows.length === 0) throw new StoreError('NotFound', `artifact ${sha256} not found`);
    await this.files.remove(sha256);
  }
}

/**
 * Reads a body it does not keep to its end before the answer goes out: answered early, the server closes the
 * connection while the client still sends, and the client may see the reset before the answer (icnctl's re-upload of
 * a 300 KiB artifact then failed as "cannot reach the API", now and then under load).
 */
async function discard(body: Readable): Promise<void> {
  body.resume();
  await finished(body);
}
