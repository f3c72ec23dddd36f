import {
  createCipheriv,
  createDecipheriv,
  createSecretKey,
  type KeyObject,
  randomBytes,
  randomUUID,
} from 'node:crypto';
import type { Labels } from '../domain/meta.ts';
import type { SecretType } from '../domain/secret.ts';
import { StoreError } from './errors.ts';
import type { Sql } from './sql.ts';

interface Row {
  name: string;
  uid: string;
  // pg returns bigint columns as strings, PGlite as numbers or bigints.
  resource_version: string | number | bigint;
  type: SecretType;
  keys: string[];
  key_id: string;
  ciphertext: Uint8Array;
  labels: Labels;
  created_at: Date | string;
}

export interface SecretSummary {
  metadata: { name: string; uid: string; resourceVersion: string; labels: Labels; creationTimestamp: string };
  type: SecretType;
  keys: string[];
}

const summary = (r: Row): SecretSummary => ({
  metadata: {
    name: r.name,
    uid: r.uid,
    resourceVersion: String(r.resource_version),
    labels: r.labels,
    creationTimestamp: new Date(r.created_at).toISOString(),
  },
  type: r.type,
  keys: r.keys,
});

/**
 * Secrets encrypted at rest with AES-256-GCM under a key from configuration (the name is bound as associated data, so
 * a ciphertext copied onto another secret's row does not decrypt). The API writes and summarises; only `reveal`, used
 * by activities at the moment of use, returns the values.
 */
export class SecretRepository {
  private readonly sql: Sql;
  /** Imported once: a raw key handed to each cipher is imported again every time. */
  private readonly keys: Map<string, KeyObject>;
  private readonly activeKeyId: string;

  constructor(sql: Sql, keys: { keys: Record<string, string>; activeKeyId: string }) {
    this.sql = sql;
    this.keys = new Map(
      Object.entries(keys.keys).map(([id, b64]) => [id, createSecretKey(Buffer.from(b64, 'base64'))]),
    );
    this.activeKeyId = keys.activeKeyId;
  }

  private encrypt(name: string, data: Record<string, string>): Buffer {
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.keys.get(this.activeKeyId) as KeyObject, nonce);
    cipher.setAAD(Buffer.from(name));
    return Buffer.concat([nonce, cipher.update(JSON.stringify(data)), cipher.final(), cipher.getAuthTag()]);
  }

  /** Create or replace; a write is never echoed back. */
  async put(
    meta: { name: string; labels?: Labels },
    type: SecretType,
    data: Record<string, string>,
  ): Promise<SecretSummary> {
    const rows = await this.sql.query<Row>(
      `INSERT INTO secrets (name, uid, resource_version, type, keys, key_id, ciphertext, labels)
       VALUES ($1, $2, nextval('resource_version_seq'), $3, $4, $5, $6, $7)
       ON CONFLICT (name) DO UPDATE SET type = $3, keys = $4, key_id = $5, ciphertext = $6, labels = $7,
         resource_version = nextval('resource_version_seq'), updated_at = now()
       RETURNING *`,
      [
        meta.name,
        randomUUID(),
        type,
        Object.keys(data).sort(),
        this.activeKeyId,
        this.encrypt(meta.name, data),
        meta.labels ?? {},
      ],
    );
    return summary(rows[0] as Row);
  }

  async get(name: string): Promise<SecretSummary> {
    return summary(await this.row(name));
  }

  async list(): Promise<SecretSummary[]> {
    return (await this.sql.query<Row>('SELECT * FROM secrets ORDER BY name')).map(summary);
  }

  async delete(name: string): Promise<void> {
    const rows = await this.sql.query('DELETE FROM secrets WHERE name = $1 RETURNING name', [name]);
    if (rows.length === 0) throw new StoreError('NotFound', `secret "${name}" not found`);
  }

  /** The values, for the activity about to use them; never for an API response or a workflow payload. */
  async reveal(name: string): Promise<{ type: SecretType; data: Record<string, string> }> {
    const row = await this.row(name);
    const key = this.keys.get(row.key_id);
    if (!key)
      throw new StoreError(
        'Invalid',
        `secret "${name}" is encrypted with key "${row.key_id}", which is not configured`,
      );
    const blob = Buffer.from(row.ciphertext);
    const decipher = createDecipheriv('aes-256-gcm', key, blob.subarray(0, 12));
    decipher.setAAD(Buffer.from(name));
    decipher.setAuthTag(blob.subarray(blob.length - 16));
    const clear = Buffer.concat([decipher.update(blob.subarray(12, blob.length - 16)), decipher.final()]);
    return { type: row.type, data: JSON.parse(clear.toString()) as Record<string, string> };
  }

  private async row(name: string): Promise<Row> {
    const row = (await this.sql.query<Row>('SELECT * FROM secrets WHERE name = $1', [name]))[0];
    if (!row) throw new StoreError('NotFound', `secret "${name}" not found`);
    return row;
  }
}
