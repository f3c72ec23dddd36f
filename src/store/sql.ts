/**
 * One small SQL interface over PostgreSQL (pg) and PGlite (embedded, the same SQL), so the store, its migrations and
 * its tests are the same whichever runs underneath.
 */
import { PGlite } from '@electric-sql/pglite';
import pg from 'pg';

export interface Sql {
  query<Row extends object>(text: string, params?: unknown[]): Promise<Row[]>;
  /** Runs `fn` in one transaction: all its writes land, or none. */
  transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T>;
  close(): Promise<void>;
  readonly kind: 'postgres' | 'pglite';
}

export function postgres(url: string, opts: { poolSize?: number } = {}): Sql {
  const pool = new pg.Pool({ connectionString: url, max: opts.poolSize ?? 10 });
  const over = (client: pg.Pool | pg.PoolClient): Pick<Sql, 'query'> => ({
    async query<Row extends object>(text: string, params: unknown[] = []) {
      return (await client.query<Row>(text, params)).rows;
    },
  });
  return {
    kind: 'postgres',
    ...over(pool),
    async transaction<T>(fn: (tx: Sql) => Promise<T>): Promise<T> {
      const client = await pool.connect();
      try {
        await client.query('BEGIN');
        const tx: Sql = {
          kind: 'postgres',
          ...over(client),
          transaction: (inner) => inner(tx),
          close: async () => undefined,
        };
        const result = await fn(tx);
        await client.query('COMMIT');
        return result;
      } catch (err) {
        await client.query('ROLLBACK');
        throw err;
      } finally {
        client.release();
      }
    },
    close: () => pool.end(),
  };
}

/** PGlite in a folder (persistent) or in memory (`undefined`). */
export async function pglite(dataDir?: string): Promise<Sql> {
  const db = dataDir === undefined ? new PGlite() : new PGlite(dataDir);
  await db.waitReady;
  const wrap = (q: Pick<PGlite, 'query'>): Pick<Sql, 'query'> => ({
    async query<Row extends object>(text: string, params: unknown[] = []) {
      return (await q.query<Row>(text, params)).rows;
    },
  });
  return {
    kind: 'pglite',
    ...wrap(db),
    transaction: <T>(fn: (tx: Sql) => Promise<T>) =>
      db.transaction(async (t) => {
        const tx: Sql = { kind: 'pglite', ...wrap(t), transaction: (inner) => inner(tx), close: async () => undefined };
        return fn(tx);
      }),
    close: () => db.close(),
  };
}
