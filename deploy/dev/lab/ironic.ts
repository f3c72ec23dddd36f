/**
 * Lab peer `ironic`: Debian's Ironic as one process (API + conductor, no message bus, noauth, SQLite) with both
 * fake-hardware and redfish enabled, plus sushy-tools' Redfish emulator whose fake systems the redfish nodes point at.
 * Each (re)start begins from an empty database and emulator state: nodes left by an earlier lab would point at a
 * dead emulator port and hold the systems' MACs.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, closeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ensureDebianPackages } from './debian.ts';
import { ensureSushyTools, htpasswdLine, labSystems, type RedfishSystem, sushyConfig } from './ironic/sushy.ts';
import type { LabContext, LabPeer } from './peer.ts';
import { freePort, readPid, sleep, startDetached, stopPid, waitUntil } from './processes.ts';

export interface IronicLabInfo {
  url: string;
  /** The API microversions the server accepts, e.g. { min: '1.1', max: '1.82' }. */
  microversion: { min: string; max: string };
  redfish: {
    url: string;
    username: string;
    /** A lab-only password, generated per lab start; it exists to prove credentials never leak. */
    password: string;
    systems: RedfishSystem[];
  };
  /** Fake-hardware driver delays, whole seconds. */
  delays: { power: number; deploy: number };
  /** Dummy files under file_url_allowed_paths, used as deploy and instance kernel/ramdisk by redfish nodes. */
  deployKernel: string;
  deployRamdisk: string;
  imagesDir: string;
  /** The SQLite file; tests use it to hold a node's reservation as another conductor would. */
  database: string;
  logFile: string;
}

interface Settings {
  powerDelay: number;
  deployDelay: number;
  systems: number;
}

const templateFile = join(dirname(fileURLToPath(import.meta.url)), 'ironic', 'ironic.conf.template');

function wholeSeconds(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  // The fake driver parses the delay with int(): anything else breaks every driver call, not just the lab start.
  if (!Number.isInteger(n) || n < 0) throw new Error(`${name} must be a whole number of seconds, got "${raw}"`);
  return n;
}

function settings(): Settings {
  const systems = wholeSeconds('ICN_LAB_REDFISH_SYSTEMS', 4);
  if (systems < 1 || systems > 0xffff) throw new Error(`ICN_LAB_REDFISH_SYSTEMS must be 1..65535, got ${systems}`);
  return {
    powerDelay: wholeSeconds('ICN_LAB_IRONIC_POWER_DELAY', 0),
    deployDelay: wholeSeconds('ICN_LAB_IRONIC_DEPLOY_DELAY', 1),
    systems,
  };
}

const files = (dir: string) => ({
  conf: join(dir, 'ironic.conf'),
  db: join(dir, 'ironic.db'),
  log: join(dir, 'ironic.log'),
  stdout: join(dir, 'ironic.stdout.log'),
  pid: join(dir, 'ironic.pid'),
  images: join(dir, 'images'),
  sushyConf: join(dir, 'sushy.conf'),
  sushyAuth: join(dir, 'sushy.htpasswd'),
  sushyState: join(dir, 'sushy-state'),
  sushyLog: join(dir, 'sushy.log'),
  sushyPid: join(dir, 'sushy.pid'),
  running: join(dir, 'running.json'),
});

interface Running {
  settings: Settings;
  info: IronicLabInfo;
}

async function ironicVersions(url: string): Promise<{ min: string; max: string } | undefined> {
  const res = await fetch(`${url}/`, { signal: AbortSignal.timeout(2000) });
  if (!res.ok) return undefined;
  const body = (await res.json()) as { default_version?: { min_version?: string; version?: string } };
  const v = body.default_version;
  return v?.min_version && v.version ? { min: v.min_version, max: v.version } : undefined;
}

async function redfishAnswers(info: IronicLabInfo['redfish']): Promise<boolean> {
  const auth = Buffer.from(`${info.username}:${info.password}`).toString('base64');
  const res = await fetch(`${info.url}/redfish/v1/Systems`, {
    headers: { authorization: `Basic ${auth}` },
    signal: AbortSignal.timeout(2000),
  });
  return res.ok;
}

async function reusable(dir: string, want: Settings): Promise<IronicLabInfo | undefined> {
  const f = files(dir);
  if (!existsSync(f.running) || readPid(f.pid) === undefined || readPid(f.sushyPid) === undefined) return undefined;
  const running = JSON.parse(readFileSync(f.running, 'utf8')) as Running;
  if (JSON.stringify(running.settings) !== JSON.stringify(want)) return undefined;
  try {
    if ((await ironicVersions(running.info.url)) === undefined) return undefined;
    if (!(await redfishAnswers(running.info.redfish))) return undefined;
  } catch {
    return undefined;
  }
  return running.info;
}

function render(template: string, values: Record<string, string | number>): string {
  return template.replace(/@([A-Z_]+)@/g, (whole, key: string) => {
    const v = values[key];
    if (v === undefined) throw new Error(`ironic.conf.template: no value for ${whole}`);
    return String(v);
  });
}

/**
 * Jest workers (and a developer's `npm run lab`) may bring the lab up at the same moment: without this they would
 * both find it down and start two Ironics over one database. The lock file holds its owner's pid; a dead owner's
 * lock is taken over.
 */
async function exclusive<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = join(dir, 'up.lock');
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    try {
      const fd = openSync(lock, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      if (readPid(lock) === undefined) {
        // Owner gone (or mid-write: give it a moment before taking over).
        await sleep(200);
        if (readPid(lock) === undefined) rmSync(lock, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new Error(`timed out waiting for ${lock} (held by another lab start)`, { cause: err });
      }
      await sleep(250);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { force: true });
  }
}

function up(ctx: LabContext): Promise<IronicLabInfo> {
  return exclusive(ctx.dataDir, () => upLocked(ctx));
}

async function upLocked(ctx: LabContext): Promise<IronicLabInfo> {
  const want = settings();
  const reused = await reusable(ctx.dataDir, want);
  if (reused) {
    ctx.log(`reusing Ironic at ${reused.url}`);
    return reused;
  }
  await stopAll(ctx);
  ensureDebianPackages(['ironic-api', 'ironic-conductor', 'python3-venv'], ctx.log);
  const python = ensureSushyTools(ctx.log);
  const f = files(ctx.dataDir);

  for (const p of [f.db, f.log, f.stdout, f.sushyState, f.sushyLog, f.running, join(ctx.dataDir, 'tftpboot')]) {
    rmSync(p, { recursive: true, force: true });
  }
  for (const d of ['locks', 'images', 'tftpboot/master_images', 'httpboot', 'sushy-state']) {
    mkdirSync(join(ctx.dataDir, d), { recursive: true });
  }
  const deployKernel = join(f.images, 'deploy.kernel');
  const deployRamdisk = join(f.images, 'deploy.ramdisk');
  writeFileSync(deployKernel, 'lab dummy kernel\n');
  writeFileSync(deployRamdisk, 'lab dummy ramdisk\n');

  const [port, sushyPort] = [await freePort(), await freePort()];
  writeFileSync(
    f.conf,
    render(readFileSync(templateFile, 'utf8'), {
      DIR: ctx.dataDir,
      PORT: port,
      POWER_DELAY: want.powerDelay,
      DEPLOY_DELAY: want.deployDelay,
    }),
  );
  try {
    execFileSync('/usr/bin/ironic-dbsync', ['--config-file', f.conf, 'create_schema'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`ironic-dbsync create_schema failed: ${e.stderr ?? e.message}`, { cause: err });
  }

  const systems = labSystems(want.systems);
  const username = 'lab-admin';
  const password = `lab-${crypto.randomUUID()}`;
  writeFileSync(f.sushyAuth, `${htpasswdLine(python, username, password)}\n`, { mode: 0o600 });
  writeFileSync(f.sushyConf, sushyConfig({ port: sushyPort, stateDir: f.sushyState, authFile: f.sushyAuth, systems }));

  startDetached(python, ['-m', 'sushy_tools.emulator.main', '--config', f.sushyConf], {
    pidFile: f.sushyPid,
    logFile: f.sushyLog,
    cwd: ctx.dataDir,
  });
  startDetached('/usr/bin/ironic', ['--config-file', f.conf], {
    pidFile: f.pid,
    logFile: f.stdout,
    cwd: ctx.dataDir,
  });

  const url = `http://127.0.0.1:${port}`;
  const redfish = { url: `http://127.0.0.1:${sushyPort}`, username, password, systems };
  let microversion: { min: string; max: string } | undefined;
  const exited = (pidFile: string, log: string) => () => {
    if (readPid(pidFile) !== undefined) return;
    const tail = existsSync(log) ? readFileSync(log, 'utf8').split('\n').slice(-15).join('\n') : '';
    throw new Error(`exited; last lines of ${log}:\n${tail}`);
  };
  await Promise.all([
    waitUntil(
      `sushy-tools emulator on ${redfish.url}`,
      async () => {
        exited(f.sushyPid, f.sushyLog)();
        return redfishAnswers(redfish);
      },
      30_000,
    ),
    waitUntil(
      `Ironic API on ${url}`,
      async () => {
        exited(f.pid, f.stdout)();
        microversion = await ironicVersions(url);
        return microversion !== undefined;
      },
      90_000,
    ),
  ]);
  if (microversion === undefined) throw new Error('Ironic answered without a microversion range');

  const info: IronicLabInfo = {
    url,
    microversion,
    redfish,
    delays: { power: want.powerDelay, deploy: want.deployDelay },
    deployKernel,
    deployRamdisk,
    imagesDir: f.images,
    database: f.db,
    logFile: f.log,
  };
  writeFileSync(f.running, JSON.stringify({ settings: want, info } satisfies Running, null, 2));
  return info;
}

/** Waits for a start in progress, so that `down` during another's `up` does not leave that lab running. */
function down(ctx: LabContext): Promise<void> {
  return exclusive(ctx.dataDir, () => stopAll(ctx));
}

async function stopAll(ctx: LabContext): Promise<void> {
  const f = files(ctx.dataDir);
  await Promise.all([stopPid(f.pid, 10_000), stopPid(f.sushyPid)]);
  rmSync(f.running, { force: true });
}

export const ironicPeer: LabPeer<IronicLabInfo> = { name: 'ironic', up, down };
