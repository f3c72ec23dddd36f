/**
 * sushy-tools' Redfish BMC emulator with its fake driver: no libvirt, each system is a record in a state folder, so
 * the redfish hardware type's power and management calls go over real HTTP with basic auth to a real Redfish service.
 * PyPI only has it, and the python3 on PATH may be pyenv's, so it lives in a venv made by Debian's /usr/bin/python3,
 * built once into the tools cache and renamed into place only when complete.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { toolsDir } from '../../tools.ts';

export const sushyVersion = '2.2.0';

export interface RedfishSystem {
  uuid: string;
  name: string;
  mac: string;
}

function run(command: string, args: string[], what: string): string {
  try {
    return execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`${what}: ${e.stderr ?? e.message}`, { cause: err });
  }
}

/** Returns the venv's python; the venv is made on first use (about half a minute, from PyPI). */
export function ensureSushyTools(log: (m: string) => void): string {
  const dir = join(toolsDir, `sushy-tools-${sushyVersion}`);
  // The venv is run through bin/python -m: its pip-written scripts carry the partial folder's path in their shebang.
  const python = join(dir, 'bin', 'python');
  if (existsSync(join(dir, '.complete'))) return python;
  const partial = `${dir}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(toolsDir, { recursive: true });
  const started = Date.now();
  log(`installing sushy-tools ${sushyVersion} from PyPI into ${dir} (first time only)`);
  try {
    run('/usr/bin/python3', ['-m', 'venv', partial], 'python3 -m venv (is python3-venv installed?)');
    run(
      join(partial, 'bin', 'python'),
      ['-m', 'pip', 'install', '--quiet', `sushy-tools==${sushyVersion}`, 'bcrypt'],
      `pip install sushy-tools==${sushyVersion} (is PyPI reachable?)`,
    );
    writeFileSync(join(partial, '.complete'), `${new Date().toISOString()}\n`);
  } catch (err) {
    rmSync(partial, { recursive: true, force: true });
    throw err;
  }
  rmSync(dir, { recursive: true, force: true });
  renameSync(partial, dir);
  log(`sushy-tools ${sushyVersion} installed in ${Math.round((Date.now() - started) / 1000)} s`);
  return python;
}

/**
 * Deterministic systems, so that a restarted lab offers the same uuids and MACs: MAC 52:54:00:1c:HH:LL and a uuid
 * ending in the same index.
 */
export function labSystems(count: number): RedfishSystem[] {
  return Array.from({ length: count }, (_, i) => {
    const n = i + 1;
    const hex = n.toString(16).padStart(4, '0');
    return {
      uuid: `1ce1ab00-0000-4000-8000-00000000${hex}`,
      name: `lab-redfish-${String(n).padStart(2, '0')}`,
      mac: `52:54:00:1c:${hex.slice(0, 2)}:${hex.slice(2)}`,
    };
  });
}

/** An htpasswd line for the emulator's basic auth; bcrypt is the only scheme it accepts. */
export function htpasswdLine(python: string, username: string, password: string): string {
  const script =
    'import bcrypt,sys; print(sys.argv[1] + ":" + bcrypt.hashpw(sys.argv[2].encode(), bcrypt.gensalt(4)).decode())';
  return run(python, ['-c', script, username, password], 'bcrypt hash for the emulator').trim();
}

export function sushyConfig(opts: {
  port: number;
  stateDir: string;
  authFile: string;
  systems: RedfishSystem[];
}): string {
  const systems = opts.systems
    .map(
      (s) =>
        `    {'uuid': '${s.uuid}', 'name': '${s.name}', 'power_state': 'Off',\n` +
        `     'nics': [{'mac': '${s.mac}', 'address': '${s.mac}'}]},`,
    )
    .join('\n');
  return [
    '# Written by deploy/dev/lab/ironic.ts (Python syntax).',
    "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'",
    `SUSHY_EMULATOR_LISTEN_PORT = ${opts.port}`,
    'SUSHY_EMULATOR_FAKE_DRIVER = True',
    `SUSHY_EMULATOR_STATE_DIR = '${opts.stateDir}'`,
    `SUSHY_EMULATOR_AUTH_FILE = '${opts.authFile}'`,
    'SUSHY_EMULATOR_FAKE_SYSTEMS = [',
    systems,
    ']',
    '',
  ].join('\n');
}
