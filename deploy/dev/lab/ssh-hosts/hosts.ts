/**
 * Simulated compute nodes: one real sshd per host on its own loopback port, all sharing one generated host key and
 * one client key. Every host has its own root folder where whatever is "installed" on it lands: all sshd run as
 * root on this one machine, so each gets HOST_ROOT and HOST_NAME through SetEnv, and its sftp server starts in that
 * folder. Used by the `ssh-hosts` lab peer (3 hosts) and by the BPA benchmark (1,000 hosts).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { ensureDebianPackages } from '../debian.ts';
import { freePort, readPid, sleep } from '../processes.ts';

export interface SshHost {
  name: string;
  host: '127.0.0.1';
  port: number;
  /** This host's root folder on the lab machine (its HOST_ROOT): what is installed on the host lands here. */
  root: string;
}

export interface SshHostsInfo {
  hosts: SshHost[];
  user: 'root';
  /** Path of the client's private key (never its contents). */
  clientKeyPath: string;
  /** OpenSSH known_hosts file naming every host's [127.0.0.1]:port. */
  knownHostsPath: string;
  /** SHA256 fingerprint of the host key all simulated hosts share, as `ssh-keygen -l` prints it. */
  hostKeyFingerprint: string;
}

export interface StartOptions {
  count: number;
  /** Folder for keys and hosts (created); absolute or relative to the working directory. */
  dir: string;
  /** How many sshd are spawned before waiting for them to listen; bounds the burst on a small machine. */
  batchSize?: number;
  log?: (message: string) => void;
}

const sshd = '/usr/sbin/sshd';
const sftpServer = '/usr/lib/openssh/sftp-server';

export function hostName(index: number): string {
  return `host-${String(index).padStart(3, '0')}`;
}

function keysDir(dir: string): string {
  return join(dir, 'keys');
}

function hostDir(dir: string, name: string): string {
  return join(dir, 'hosts', name);
}

function ensureKeys(dir: string): { clientKeyPath: string; hostPublicKey: string; hostKeyFingerprint: string } {
  const keys = keysDir(dir);
  mkdirSync(keys, { recursive: true });
  const hostKey = join(keys, 'ssh_host_ed25519_key');
  const clientKey = join(keys, 'client_ed25519');
  for (const [file, comment] of [
    [hostKey, 'icn-lab-host'],
    [clientKey, 'icn-lab-client'],
  ] as const) {
    if (!existsSync(file) || !existsSync(`${file}.pub`)) {
      rmSync(file, { force: true });
      rmSync(`${file}.pub`, { force: true });
      execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', comment, '-f', file], { stdio: 'ignore' });
    }
  }
  writeFileSync(join(keys, 'authorized_keys'), readFileSync(`${clientKey}.pub`));
  const hostPublicKey = readFileSync(`${hostKey}.pub`, 'utf8').trim().split(/\s+/).slice(0, 2).join(' ');
  const fingerprint = execFileSync('ssh-keygen', ['-l', '-E', 'sha256', '-f', `${hostKey}.pub`], { encoding: 'utf8' });
  return { clientKeyPath: clientKey, hostPublicKey, hostKeyFingerprint: fingerprint.split(/\s+/)[1] ?? '' };
}

// The verified lab/sshd-host.conf, plus this host's own environment and sftp start folder.
function sshdConfig(keys: string, name: string, root: string): string {
  return [
    'ListenAddress 127.0.0.1',
    `HostKey ${keys}/ssh_host_ed25519_key`,
    'PermitRootLogin prohibit-password',
    'PubkeyAuthentication yes',
    'PasswordAuthentication no',
    'KbdInteractiveAuthentication no',
    `AuthorizedKeysFile ${keys}/authorized_keys`,
    'UsePAM no',
    'StrictModes no',
    'MaxStartups 200:30:400',
    'MaxSessions 200',
    'LogLevel ERROR',
    'UseDNS no',
    'X11Forwarding no',
    'PrintMotd no',
    // Relative sftp paths land in the host's root, like commands that use $HOST_ROOT.
    `Subsystem sftp ${sftpServer} -d "${root}"`,
    // SHLVL=1 keeps root's pyenv .bashrc from adding about 2 s to every command.
    `SetEnv SHLVL=1 HOST_NAME=${name} "HOST_ROOT=${root}"`,
    '',
  ].join('\n');
}

/** Local ports with a listening TCP socket on 127.0.0.1, read from the kernel at once for every host. */
function listeningPorts(): Set<number> {
  const ports = new Set<number>();
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    const [address, port] = (fields[1] ?? '').split(':');
    if (fields[3] === '0A' && address === '0100007F' && port) ports.add(parseInt(port, 16));
  }
  return ports;
}

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`;
}

/**
 * Starts the sshd of a batch of hosts from one detached shell rather than with processes.ts' startDetached: forking
 * this (large) Node process costs about 6 ms per sshd, a small shell far less, which is most of the start time of
 * 1,000 hosts; and sshd writes its own log (-E), so no log descriptor per host stays open in this process. The sshd
 * are in the shell's new session, away from this terminal's signals. Returns each host's pid (also in its pid file).
 */
async function spawnSshdBatch(dir: string, batch: { name: string; port: number }[]): Promise<Map<string, number>> {
  const script = batch
    .map(({ name, port }) => {
      const hd = hostDir(dir, name);
      writeFileSync(join(hd, 'port'), String(port));
      const args = ['-D', '-f', join(hd, 'sshd_config'), '-p', String(port), '-E', join(hd, 'sshd.log')];
      return `${sshd} ${args.map(shellQuote).join(' ')} -o PidFile=none </dev/null >/dev/null 2>&1 & echo "${name} $!"`;
    })
    .join('\n');
  const output = await new Promise<string>((resolvePids, reject) => {
    const child = spawn('sh', ['-c', script], { detached: true, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString('utf8')));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolvePids(out);
      else reject(new Error(`the shell starting sshd exited ${code}`));
    });
  });
  const pids = new Map<string, number>();
  for (const line of output.trim().split('\n')) {
    const [name = '', pid = ''] = line.split(' ');
    pids.set(name, Number(pid));
    writeFileSync(join(hostDir(dir, name), 'sshd.pid'), pid);
  }
  return pids;
}

function recordedPort(dir: string, name: string): number | undefined {
  const file = join(hostDir(dir, name), 'port');
  if (!existsSync(file)) return undefined;
  const port = Number(readFileSync(file, 'utf8').trim());
  return Number.isInteger(port) && port > 0 ? port : undefined;
}

function logTail(dir: string, name: string): string {
  const file = join(hostDir(dir, name), 'sshd.log');
  return existsSync(file) ? readFileSync(file, 'utf8').trim().split('\n').slice(-3).join(' | ') : '';
}

/**
 * Starts `count` hosts under `dir` (idempotent: running hosts are kept, stopped ones restarted on their recorded
 * port when it is still free, hosts past `count` stopped) and returns their info once every sshd listens.
 */
export async function startSshHosts(opts: StartOptions): Promise<SshHostsInfo> {
  const dir = resolve(opts.dir);
  const log = opts.log ?? (() => undefined);
  const batchSize = opts.batchSize ?? 100;
  ensureDebianPackages(['openssh-server'], log);
  // sshd refuses to start without its privilege separation folder, which only the system service creates.
  mkdirSync('/run/sshd', { recursive: true, mode: 0o755 });
  const { clientKeyPath, hostPublicKey, hostKeyFingerprint } = ensureKeys(dir);
  const keys = keysDir(dir);

  const names = Array.from({ length: opts.count }, (_, i) => hostName(i + 1));
  const wanted = new Set(names);
  const extra = listHosts(dir).filter((n) => !wanted.has(n));
  if (extra.length > 0) await stopHosts(dir, extra);

  const listening = listingSafe();
  const ports = new Map<string, number>();
  const toStart: string[] = [];
  for (const name of names) {
    const hd = hostDir(dir, name);
    const root = join(hd, 'root');
    mkdirSync(root, { recursive: true });
    writeFileSync(join(hd, 'sshd_config'), sshdConfig(keys, name, root));
    const pid = hostPid(dir, name);
    const port = recordedPort(dir, name);
    if (pid !== undefined && port !== undefined && listening.has(port)) ports.set(name, port);
    else {
      if (pid !== undefined) await stopHosts(dir, [name]);
      toStart.push(name);
    }
  }

  const taken = new Set([...listening, ...ports.values()]);
  async function newPort(): Promise<number> {
    for (;;) {
      const port = await freePort();
      if (!taken.has(port)) {
        taken.add(port);
        return port;
      }
    }
  }

  for (let i = 0; i < toStart.length; i += batchSize) {
    let batch = toStart.slice(i, i + batchSize);
    // A port found free can be taken by another program before sshd binds it: such an sshd exits, and is
    // restarted on another port.
    for (let attempt = 1; batch.length > 0; attempt++) {
      for (const name of batch) {
        const previous = recordedPort(dir, name);
        const port = previous !== undefined && !taken.has(previous) ? previous : await newPort();
        taken.add(port);
        ports.set(name, port);
      }
      const pids = await spawnSshdBatch(
        dir,
        batch.map((name) => ({ name, port: ports.get(name) ?? 0 })),
      );
      const failed: string[] = [];
      const deadline = Date.now() + 20_000;
      let pending = [...batch];
      while (pending.length > 0) {
        const now = listeningPorts();
        pending = pending.filter((name) => {
          if (!running(pids.get(name) ?? 0)) {
            failed.push(name);
            return false;
          }
          return !now.has(ports.get(name) ?? 0);
        });
        if (pending.length === 0) break;
        if (Date.now() > deadline) {
          throw new Error(
            `sshd of ${pending.slice(0, 5).join(', ')} not listening after 20 s: ${logTail(dir, pending[0] ?? '')}`,
          );
        }
        await sleep(20);
      }
      if (failed.length > 0 && attempt >= 3) {
        throw new Error(`sshd of ${failed[0] ?? ''} could not start: ${logTail(dir, failed[0] ?? '')}`);
      }
      // Forget the port of a failed host so that its next attempt takes a new one.
      for (const name of failed) rmSync(join(hostDir(dir, name), 'port'), { force: true });
      batch = failed;
    }
  }

  const hosts: SshHost[] = names.map((name) => ({
    name,
    host: '127.0.0.1',
    port: ports.get(name) ?? 0,
    root: join(hostDir(dir, name), 'root'),
  }));
  const knownHostsPath = join(keys, 'known_hosts');
  writeFileSync(knownHostsPath, hosts.map((h) => `[127.0.0.1]:${h.port} ${hostPublicKey}\n`).join(''));
  return { hosts, user: 'root', clientKeyPath, knownHostsPath, hostKeyFingerprint };
}

function listingSafe(): Set<number> {
  try {
    return listeningPorts();
  } catch {
    return new Set();
  }
}

/** Names of the hosts that have a folder under `dir`. */
export function listHosts(dir: string): string[] {
  const hosts = join(resolve(dir), 'hosts');
  return existsSync(hosts) ? readdirSync(hosts).filter((n) => n.startsWith('host-')) : [];
}

/** Parent pid of every process, read once from /proc. */
function parentPids(): Map<number, number> {
  const parents = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      // The command name (field 2) may hold spaces and parentheses: fields after the last ')' are fixed.
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parents.set(Number(entry), ppid);
    } catch {
      // The process exited while /proc was read.
    }
  }
  return parents;
}

/** The listening sshd of each host and its session processes (sshd forks one per connection, then the commands). */
function hostProcesses(dir: string, names: string[]): number[] {
  const roots = names.map((n) => hostPid(dir, n)).filter((p) => p !== undefined);
  if (roots.length === 0) return [];
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of parentPids()) children.set(ppid, [...(children.get(ppid) ?? []), pid]);
  const all: number[] = [];
  const queue = [...roots];
  for (let pid = queue.shift(); pid !== undefined; pid = queue.shift()) {
    all.push(pid);
    queue.push(...(children.get(pid) ?? []));
  }
  return all;
}

/**
 * Alive and not a zombie: an sshd started from the batch shell is reaped by init once stopped, which here (a
 * micro-VM's init) takes up to a second or more, while kill(pid, 0) still succeeds on the zombie.
 */
function running(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

function hostPid(dir: string, name: string): number | undefined {
  const pid = readPid(join(hostDir(dir, name), 'sshd.pid'));
  return pid !== undefined && running(pid) ? pid : undefined;
}

function signal(pids: number[], sig: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, sig);
    } catch {
      // Already gone.
    }
  }
}

async function stopHosts(dir: string, names: string[], sig: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const pids = hostProcesses(dir, names);
  signal(pids, sig);
  const deadline = Date.now() + 5000;
  while (pids.some(running) && Date.now() < deadline) await sleep(20);
  signal(pids.filter(running), 'SIGKILL');
  for (const name of names) rmSync(join(hostDir(dir, name), 'sshd.pid'), { force: true });
}

/** Stops every host under `dir` with its open sessions; keeps keys, ports and root folders for the next start. */
export async function stopSshHosts(dir: string): Promise<void> {
  const resolved = resolve(dir);
  await stopHosts(resolved, listHosts(resolved));
}

/**
 * Kills one host at once (SIGKILL to its sshd and every session): a machine that drops off the network mid-step.
 * `startSshHosts` with the same dir brings it back on the same port.
 */
export async function killSshHost(dir: string, name: string): Promise<void> {
  await stopHosts(resolve(dir), [name], 'SIGKILL');
}

/** Memory the hosts take: the sum of PSS (kB from /proc/<pid>/smaps_rollup) of their sshd and sessions, in bytes. */
export function sshHostsPssBytes(dir: string): number {
  const resolved = resolve(dir);
  let kb = 0;
  for (const pid of hostProcesses(resolved, listHosts(resolved))) {
    try {
      const match = /^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'));
      kb += Number(match?.[1] ?? 0);
    } catch {
      // Exited meanwhile.
    }
  }
  return kb * 1024;
}

/** Whether every host under `dir` has its sshd running and listening. */
export function sshHostsRunning(dir: string, names: string[]): boolean {
  const listening = listeningPorts();
  const resolved = resolve(dir);
  return names.every((n) => {
    const port = recordedPort(resolved, n);
    return hostPid(resolved, n) !== undefined && port !== undefined && listening.has(port);
  });
}
