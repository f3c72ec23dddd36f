/**
 * BPA fan-out over SSH against Ansible: one 20 MB package (an install script followed by random bytes) installed on
 * N simulated hosts (one sshd each, startSshHosts), first by the BPA (a child process, so that its own CPU and peak
 * RSS are measured), then by Ansible doing the same (copy, sha256sum, a marker: the fair settings of
 * lab/ansible-baseline.md) on the same hosts. Results: bench/results/bpa.json.
 *
 *   node bench/bpa.ts --hosts 100,1000 [--package-mb 20] [--parallelism 48] [--ansible-forks 100] [--skip-ansible]
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, resolve } from 'node:path';
import { Command } from 'commander';
import { freePort, sleep, waitUntil } from '../deploy/dev/lab/processes.ts';
import { type SshHostsInfo, startSshHosts, stopSshHosts } from '../deploy/dev/lab/ssh-hosts.ts';
import { BpaClient } from '../src/clients/bpa/index.ts';

const program = new Command()
  .option('--hosts <list>', 'host counts, comma-separated', '100,1000')
  .option('--package-mb <mb>', 'package size in MiB', '20')
  .option('--parallelism <n>', 'hosts the BPA works on at once', '48')
  .option('--ansible-forks <n>', "Ansible's forks", '100')
  .option('--skip-ansible', 'measure the BPA only (the results keep ansibleSeconds null)')
  .option('--dir <dir>', 'working folder (hosts, BPA data)', 'data/bench/bpa')
  .parse();
const opts = program.opts<{
  hosts: string;
  packageMb: string;
  parallelism: string;
  ansibleForks: string;
  skipAnsible?: boolean;
  dir: string;
}>();

const counts = opts.hosts.split(',').map(Number);
const packageMB = Number(opts.packageMb);
const parallelism = Number(opts.parallelism);
const ansibleForks = Number(opts.ansibleForks);
const dir = resolve(opts.dir);
const token = 'bench-token-0123456789abcdef';
/**
 * As the BPA is deployed: a small young generation makes V8 collect the encrypted packets' buffers (external memory,
 * 32 KiB each) sooner, which bounds the RSS under a fan-out at little CPU.
 */
const nodeFlags = (process.env.ICN_BPA_NODE_FLAGS ?? '--max-semi-space-size=1').split(' ').filter(Boolean);

interface Run {
  hosts: number;
  packageMB: number;
  bpaSeconds: number;
  ansibleSeconds: number | null;
  ansibleForks: number;
  bpaMaxRssMB: number;
  bpaCpuSeconds: number;
  machineCpuSecondsDuringBpa: number;
  bpaParallelism: number;
  ratio: number | null;
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** CPU time the whole machine spent (every process: the BPA, the hosts' sshd and commands, and anything else). */
function machineBusySeconds(): number {
  const fields = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').split(/\s+/).slice(1).map(Number);
  const idle = (fields[3] ?? 0) + (fields[4] ?? 0);
  return (fields.reduce((x, y) => x + y, 0) - idle) / 100;
}

function rssMB(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Math.round(Number(m?.[1] ?? 0) / 1024);
}

function peakRssMB(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Math.round(Number(m?.[1] ?? 0) / 1024);
}

/** The package: a shell script that writes a marker and exits, followed by random bytes it never reads. */
function makePackage(path: string): { sha256: string; size: number } {
  const script = Buffer.from(
    '#!/bin/sh\nmkdir -p "${HOST_ROOT:-}/opt/bench" && echo "$ICN_PACKAGE_VERSION" > "${HOST_ROOT:-}/opt/bench/marker"\nexit 0\n',
  );
  const content = Buffer.concat([script, randomBytes(packageMB * 2 ** 20 - script.length)]);
  writeFileSync(path, content);
  return { sha256: createHash('sha256').update(content).digest('hex'), size: content.length };
}

function removeCopies(info: SshHostsInfo): void {
  for (const h of info.hosts) {
    rmSync(join(h.root, 'var/lib/icn-bpa'), { recursive: true, force: true });
    rmSync(join(h.root, 'opt/bench'), { recursive: true, force: true });
    rmSync(join(h.root, 'ansible-package.bin'), { force: true });
    rmSync(join(h.root, 'ansible-marker'), { force: true });
  }
}

async function runBpa(info: SshHostsInfo, pkgPath: string, pkg: { sha256: string; size: number }) {
  const dataDir = join(dir, 'bpa-data');
  rmSync(dataDir, { recursive: true, force: true });
  const port = await freePort();
  let log = '';
  const child = spawn(process.execPath, [...nodeFlags, 'src/bpa/main.ts'], {
    env: {
      ...process.env,
      ICN_BPA_PORT: String(port),
      ICN_BPA_TOKENS: `${token}=admin`,
      ICN_BPA_DATA_DIR: dataDir,
      ICN_BPA_KNOWN_HOSTS: info.knownHostsPath,
      ICN_BPA_PARALLELISM: String(parallelism),
      ICN_BPA_MAX_CONNECTIONS: String(Math.max(parallelism * 2, 64)),
      LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (c: Buffer) => (log += c.toString()));
  child.stderr.on('data', (c: Buffer) => (log += c.toString()));
  const pid = child.pid ?? 0;
  try {
    await waitUntil(
      'the BPA to listen',
      async () =>
        fetch(`http://127.0.0.1:${port}/healthz`).then(
          (r) => r.ok,
          () => false,
        ),
      30_000,
    );
    const client = new BpaClient({ url: `http://127.0.0.1:${port}`, token });
    await client.putSecret('bench', {
      type: 'ssh-key',
      stringData: { privateKey: readFileSync(info.clientKeyPath, 'utf8') },
    });
    await client.uploadArtifact(
      {
        type: 'binary-package',
        name: 'bench-package',
        version: '1.0.0',
        sha256: pkg.sha256,
        size: pkg.size,
        metadata: {},
      },
      pkgPath,
    );
    console.log(`BPA before the job: RSS ${rssMB(pid)} MB, peak ${peakRssMB(pid)} MB`);
    const cpuBefore = cpuSeconds(pid);
    const machineBefore = machineBusySeconds();
    const started = performance.now();
    const job = await client.startJob({
      id: `bench-${info.hosts.length}`,
      hosts: info.hosts.map((h) => ({
        name: h.name,
        address: h.host,
        port: h.port,
        user: 'root',
        keyRef: { name: 'bench' },
      })),
      packages: [
        {
          name: 'bench-package',
          version: '1.0.0',
          artifact: { sha256: pkg.sha256 },
          install: 'sh "$ICN_PACKAGE_FILE"',
          verify: 'test -f "${HOST_ROOT:-}/opt/bench/marker"',
          rebootRequired: false,
        },
      ],
    });
    let done = job;
    while (done.state === 'pending' || done.state === 'running') {
      await sleep(250);
      // The list leaves the hosts out: polling a 1,000-host job in full would cost the BPA what it measures.
      done = (await client.listJobs()).find((j) => j.id === job.id) ?? done;
    }
    const seconds = (performance.now() - started) / 1000;
    const cpu = cpuSeconds(pid) - cpuBefore;
    const machineCpu = machineBusySeconds() - machineBefore;
    const rss = peakRssMB(pid);
    done = (await client.getJob(job.id)) ?? done;
    if (done.state !== 'succeeded') {
      const failed = done.hosts.filter((h) => h.state === 'failed');
      throw new Error(
        `the BPA job ${done.state}: ${failed.length} hosts failed, e.g. ${failed[0]?.error ?? done.error ?? ''}`,
      );
    }
    // Every host really has it: its record and the marker the package wrote.
    for (const h of info.hosts) {
      const record = readFileSync(join(h.root, 'var/lib/icn-bpa/packages/bench-package'), 'utf8');
      if (!record.startsWith(`1.0.0 ${pkg.sha256}`)) throw new Error(`${h.name} lacks the package record`);
      statSync(join(h.root, 'opt/bench/marker'));
    }
    return { seconds, cpu, rss, machineCpu };
  } catch (err) {
    console.error(log.slice(-3000));
    throw err;
  } finally {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  }
}

function runAnsible(info: SshHostsInfo, pkgPath: string, sha256: string): number {
  const work = join(dir, 'ansible');
  mkdirSync(work, { recursive: true });
  const inventory = join(work, 'inventory.ini');
  writeFileSync(
    inventory,
    `[hosts]\n${info.hosts
      .map(
        (h) =>
          `${h.name} ansible_host=127.0.0.1 ansible_port=${h.port} ansible_user=root ansible_ssh_private_key_file=${info.clientKeyPath} host_root=${h.root}`,
      )
      .join('\n')}\n`,
  );
  const playbook = join(work, 'install.yml');
  writeFileSync(
    playbook,
    [
      '- hosts: hosts',
      '  gather_facts: false',
      '  tasks:',
      '    - copy: { src: "' + pkgPath + '", dest: "{{ host_root }}/ansible-package.bin", mode: "0644" }',
      '    - command: sha256sum "{{ host_root }}/ansible-package.bin"',
      '      register: sum',
      `      failed_when: sum.stdout.split()[0] != "${sha256}"`,
      '    - shell: echo installed > "{{ host_root }}/ansible-marker"',
      '',
    ].join('\n'),
  );
  const started = performance.now();
  execFileSync('ansible-playbook', ['-i', inventory, playbook], {
    stdio: ['ignore', process.env.ICN_BENCH_VERBOSE ? 'inherit' : 'ignore', 'inherit'],
    env: {
      ...process.env,
      ANSIBLE_FORKS: String(ansibleForks),
      ANSIBLE_PIPELINING: 'True',
      ANSIBLE_GATHERING: 'explicit',
      ANSIBLE_HOST_KEY_CHECKING: 'False',
      ANSIBLE_PYTHON_INTERPRETER: '/usr/bin/python3',
      ANSIBLE_SSH_ARGS: '-o ControlMaster=auto -o ControlPersist=30m -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR',
      ANSIBLE_RETRY_FILES_ENABLED: 'False',
    },
  });
  const seconds = (performance.now() - started) / 1000;
  for (const h of info.hosts) statSync(join(h.root, 'ansible-marker'));
  return seconds;
}

function commit(): string {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

mkdirSync(dir, { recursive: true });
const pkgPath = join(dir, 'package.bin');
const pkg = makePackage(pkgPath);
const runs: Run[] = [];
const hostsDir = join(dir, 'hosts');
try {
  for (const count of counts) {
    console.log(`--- ${count} hosts, ${packageMB} MiB package`);
    const startedHosts = performance.now();
    const info = await startSshHosts({ count, dir: hostsDir, batchSize: 200 });
    console.log(`hosts up in ${((performance.now() - startedHosts) / 1000).toFixed(1)} s`);
    removeCopies(info);
    const bpa = await runBpa(info, pkgPath, pkg);
    console.log(
      `BPA: ${bpa.seconds.toFixed(1)} s wall, ${bpa.cpu.toFixed(1)} s CPU, peak RSS ${bpa.rss} MB; whole machine ${bpa.machineCpu.toFixed(1)} CPU s`,
    );
    removeCopies(info);
    let ansibleSeconds: number | null = null;
    if (!opts.skipAnsible) {
      ansibleSeconds = runAnsible(info, pkgPath, pkg.sha256);
      console.log(`Ansible (forks ${ansibleForks}): ${ansibleSeconds.toFixed(1)} s wall`);
      removeCopies(info);
    }
    const ratio = ansibleSeconds === null ? null : Math.round((ansibleSeconds / bpa.seconds) * 100) / 100;
    if (ratio !== null) console.log(`ratio Ansible / BPA: ${ratio}`);
    runs.push({
      hosts: count,
      packageMB,
      bpaSeconds: Math.round(bpa.seconds * 10) / 10,
      ansibleSeconds: ansibleSeconds === null ? null : Math.round(ansibleSeconds * 10) / 10,
      ansibleForks,
      bpaMaxRssMB: bpa.rss,
      bpaCpuSeconds: Math.round(bpa.cpu * 10) / 10,
      machineCpuSecondsDuringBpa: Math.round(bpa.machineCpu * 10) / 10,
      bpaParallelism: parallelism,
      ratio,
    });
  }
} finally {
  await stopSshHosts(hostsDir);
}
const results = { date: new Date().toISOString(), commit: commit(), cores: availableParallelism(), runs };
mkdirSync('bench/results', { recursive: true });
writeFileSync('bench/results/bpa.json', `${JSON.stringify(results, null, 2)}\n`);
console.log(JSON.stringify(results, null, 2));
