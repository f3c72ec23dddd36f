/**
 * The machine's PostgreSQL 15 (Debian's), installed if missing and started with pg_ctlcluster, with a role `icn` that
 * may create databases (each test makes its own). The role is the machine's, shared by every checkout's lab (a CI
 * clone next to a working copy), so its password is too: generated once into a machine-wide file (mode 0600) beside
 * the tools cache; a per-checkout password made two labs reset it under each other's feet. Info carries the path,
 * never the password.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { toolsDir } from '../tools.ts';
import { ensureDebianPackages } from './debian.ts';
import type { LabPeer } from './peer.ts';

export interface PostgresLabInfo {
  host: string;
  port: number;
  user: string;
  passwordFile: string;
  database: string;
}

const version = '15';
const cluster = 'main';

function asPostgres(sql: string): string {
  return execFileSync('runuser', ['-u', 'postgres', '--', 'psql', '-p', String(port()), '-tAc', sql], {
    encoding: 'utf8',
    cwd: '/',
  }).trim();
}

function port(): number {
  const conf = readFileSync(`/etc/postgresql/${version}/${cluster}/postgresql.conf`, 'utf8');
  return Number(/^port\s*=\s*(\d+)/m.exec(conf)?.[1] ?? 5432);
}

function clusterOnline(): boolean {
  const out = execFileSync('pg_lsclusters', ['-h'], { encoding: 'utf8' });
  return out.split('\n').some((l) => l.startsWith(`${version} ${cluster} `) && l.includes('online'));
}

export const postgresPeer: LabPeer<PostgresLabInfo> = {
  name: 'postgres',
  up: async (ctx) => {
    ensureDebianPackages([`postgresql-${version}`], ctx.log);
    if (!clusterOnline()) {
      ctx.log(`starting PostgreSQL ${version}/${cluster}`);
      execFileSync('pg_ctlcluster', [version, cluster, 'start'], { stdio: 'pipe' });
    }
    const passwordFile = join(dirname(toolsDir), 'lab', 'postgres-password');
    if (!existsSync(passwordFile)) {
      mkdirSync(dirname(passwordFile), { recursive: true, mode: 0o700 });
      // "wx": two labs starting at once must not both write a different password.
      try {
        writeFileSync(passwordFile, randomBytes(18).toString('base64url'), { mode: 0o600, flag: 'wx' });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
    const password = readFileSync(passwordFile, 'utf8').trim();
    // Idempotent: the role is created once, its password reset to the file's every time.
    const role = asPostgres("SELECT 1 FROM pg_roles WHERE rolname = 'icn'");
    asPostgres(`${role === '1' ? 'ALTER' : 'CREATE'} ROLE icn LOGIN CREATEDB PASSWORD '${password}'`);
    if (asPostgres("SELECT 1 FROM pg_database WHERE datname = 'icn'") !== '1')
      asPostgres('CREATE DATABASE icn OWNER icn');
    return { host: '127.0.0.1', port: port(), user: 'icn', passwordFile, database: 'icn' };
  },
  // The machine's server is shared with whatever else uses it: the lab leaves it running.
  down: async () => undefined,
};

export function postgresUrl(info: PostgresLabInfo, database = info.database): string {
  const password = encodeURIComponent(readFileSync(info.passwordFile, 'utf8').trim());
  return `postgres://${info.user}:${password}@${info.host}:${info.port}/${database}`;
}
