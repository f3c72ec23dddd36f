import { randomUUID } from 'node:crypto';
import type { Labels } from '../domain/meta.ts';
import { StoreError } from './errors.ts';
import type { Sql } from './sql.ts';

export interface StoredObject<Spec, Status> {
  metadata: {
    name: string;
    uid: string;
    resourceVersion: string;
    labels: Labels;
    annotations: Record<string, string>;
    creationTimestamp: string;
  };
  spec: Spec;
  status?: Status;
}

interface Row {
  name: string;
  uid: string;
  // pg returns bigint columns as strings, PGlite as numbers or bigints.
  resource_version: string | number | bigint;
  labels: Labels;
  annotations: Record<string, string>;
  spec: unknown;
  status: unknown;
  created_at: Date | string;
}

/** Equality selectors (`region=eu,tier=edge`) and existence (`gpu`), as kubectl's -l takes them. */
export interface ListOptions {
  matchLabels?: Labels;
  hasLabels?: string[];
  limit?: number;
  /** Opaque token from the previous page. */
  continue?: string;
}

export interface Page<T> {
  items: T[];
  continue?: string;
}

const nextVersion = "nextval('resource_version_seq')";

/**
 * Mutable resources of one kind (sites). Every write takes a new resourceVersion from one sequence; an update or delete
 * naming a stale one is refused, so two writers never silently overwrite each other.
 */
export class ResourceRepository<Spec, Status> {
  private readonly sql: Sql;
  private readonly kind: string;

  constructor(sql: Sql, kind: string) {
    this.sql = sql;
    this.kind = kind;
  }

  private toObject(row: Row): StoredObject<Spec, Status> {
    return {
      metadata: {
        name: row.name,
        uid: row.uid,
        resourceVersion: String(row.resource_version),
        labels: row.labels,
        annotations: row.annotations,
        creationTimestamp: new Date(row.created_at).toISOString(),
      },
      spec: row.spec as Spec,
      ...(row.status !== null && { status: row.status as Status }),
    };
  }

  async create(meta: { name: string; labels?: Labels; annotations?: Record<string, string> }, spec: Spec) {
    const rows = await this.sql.query<Row>(
      `INSERT INTO resources (kind, name, uid, resource_version, labels, annotations, spec)
       VALUES ($1, $2, $3, ${nextVersion}, $4, $5, $6)
       ON CONFLICT (kind, name) DO NOTHING RETURNING *`,
      [this.kind, meta.name, randomUUID(), meta.labels ?? {}, meta.annotations ?? {}, spec],
    );
    const row = rows[0];
    if (!row) throw new StoreError('AlreadyExists', `${this.kind} "${meta.name}" already exists`, 'metadata.name');
    return this.toObject(row);
  }

  async get(name: string): Promise<StoredObject<Spec, Status>> {
    const row = (
      await this.sql.query<Row>('SELECT * FROM resources WHERE kind = $1 AND name = $2', [this.kind, name])
    )[0];
    if (!row) throw new StoreError('NotFound', `${this.kind} "${name}" not found`);
    return this.toObject(row);
  }

  async find(name: string): Promise<StoredObject<Spec, Status> | undefined> {
    return this.get(name).catch((err: unknown) => {
      if (err instanceof StoreError && err.code === 'NotFound') return undefined;
      throw err;
    });
  }

  async list(opts: ListOptions = {}): Promise<Page<StoredObject<Spec, Status>>> {
    const limit = Math.min(Math.max(opts.limit ?? 500, 1), 1000);
    const after = opts.continue === undefined ? '' : Buffer.from(opts.continue, 'base64url').toString();
    const rows = await this.sql.query<Row>(
      `SELECT * FROM resources WHERE kind = $1 AND labels @> $2 AND labels ?& $3 AND name > $4
       ORDER BY name LIMIT $5`,
      [this.kind, opts.matchLabels ?? {}, opts.hasLabels ?? [], after, limit + 1],
    );
    const page = rows.slice(0, limit).map((r) => this.toObject(r));
    const last = page.at(-1);
    return rows.length > limit && last
      ? { items: page, continue: Buffer.from(last.metadata.name).toString('base64url') }
      : { items: page };
  }

  /** Replaces labels, annotations and spec; `resourceVersion` must be the one the writer read. */
  async update(
    meta: { name: string; resourceVersion?: string | undefined; labels?: Labels; annotations?: Record<string, string> },
    spec: Spec,
  ) {
    if (meta.resourceVersion === undefined) {
      throw new StoreError(
        'Conflict',
        `updating ${this.kind} "${meta.name}" needs metadata.resourceVersion (the version you read)`,
        'metadata.resourceVersion',
      );
    }
    const rows = await this.sql.query<Row>(
      `UPDATE resources SET labels = $4, annotations = $5, spec = $6, resource_version = ${nextVersion}, updated_at = now()
       WHERE kind = $1 AND name = $2 AND resource_version = $3 RETURNING *`,
      [this.kind, meta.name, meta.resourceVersion, meta.labels ?? {}, meta.annotations ?? {}, spec],
    );
    const row = rows[0];
    if (row) return this.toObject(row);
    const current = await this.get(meta.name);
    throw new StoreError(
      'Conflict',
      `${this.kind} "${meta.name}" was changed by someone else (resourceVersion ${current.metadata.resourceVersion}, ` +
        `you sent ${meta.resourceVersion}): read it again and reapply`,
      'metadata.resourceVersion',
    );
  }

  /**
   * Status is written by the workflows that own it; it bumps resourceVersion. With `resourceVersion` the write lands
   * only on that version (a Conflict otherwise): a read-modify-write without holding a row lock.
   */
  async setStatus(name: string, status: Status, resourceVersion?: string): Promise<StoredObject<Spec, Status>> {
    const rows = await this.sql.query<Row>(
      `UPDATE resources SET status = $3, resource_version = ${nextVersion}, updated_at = now()
       WHERE kind = $1 AND name = $2 AND ($4::bigint IS NULL OR resource_version = $4::bigint) RETURNING *`,
      [this.kind, name, status, resourceVersion ?? null],
    );
    const row = rows[0];
    if (row) return this.toObject(row);
    await this.get(name);
    throw new StoreError(
      'Conflict',
      `${this.kind} "${name}" was changed since resourceVersion ${resourceVersion ?? ''}`,
    );
  }

  /**
   * Merges `entry` into the status member `status[map][key]` in one statement, creating the map, the member and the
   * status itself (from `initial`) as needed; a merge that changes nothing writes nothing. Writers of different keys of
   * the same object (a site's hosts in flight) neither wait for nor redo each other, where a read-modify-write on the
   * resourceVersion took two round trips and a retry for every writer that lost the race.
   */
  async mergeStatusEntry(name: string, map: string, key: string, entry: object, initial: object): Promise<void> {
    const base = `(jsonb_build_object($6::text, '{}'::jsonb) || $5::jsonb || coalesce(status, '{}'::jsonb))`;
    const merged = `coalesce(status #> ARRAY[$6::text, $3::text], '{}'::jsonb) || $4::jsonb`;
    const rows = await this.sql.query<{ name: string }>(
      `UPDATE resources SET status = jsonb_set(${base}, ARRAY[$6::text, $3::text], ${merged}),
         resource_version = ${nextVersion}, updated_at = now()
       WHERE kind = $1 AND name = $2 AND (status #> ARRAY[$6::text, $3::text]) IS DISTINCT FROM (${merged})
       RETURNING name`,
      [this.kind, name, key, entry, initial, map],
    );
    // Nothing written: unchanged, or no such object (which get reports).
    if (rows.length === 0) await this.get(name);
  }

  async delete(name: string, resourceVersion?: string): Promise<void> {
    const rows = await this.sql.query<{ name: string }>(
      `DELETE FROM resources WHERE kind = $1 AND name = $2 AND ($3::bigint IS NULL OR resource_version = $3::bigint)
       RETURNING name`,
      [this.kind, name, resourceVersion ?? null],
    );
    if (rows.length > 0) return;
    await this.get(name);
    throw new StoreError(
      'Conflict',
      `${this.kind} "${name}" was changed since resourceVersion ${resourceVersion ?? ''}`,
    );
  }
}
