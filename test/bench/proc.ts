/** What /proc says of a process and of the machine: CPU time and memory, for the benchmarks' reports. */
import { readdirSync, readFileSync } from 'node:fs';

/** utime + stime, in seconds, of a /proc stat line (a process's or a thread's). */
function statCpuSeconds(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** utime + stime of a process, in seconds (0 once it is gone). */
export function cpuSeconds(pid: number): number {
  try {
    return statCpuSeconds(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return 0;
  }
}

/**
 * CPU time of the whole machine, in seconds: `busy`, what its processes spent (other people's too), and `steal`, what
 * the hypervisor gave another guest while this one wanted its cores. Steal is not in `busy`: a run with much of it
 * shared its host with a busy neighbour, and its wall time says less about the code.
 */
export function machineCpuSeconds(): { busy: number; steal: number } {
  // user nice system idle iowait irq softirq steal guest guest_nice; guest time is already in user and nice.
  const f = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').split(/\s+/).slice(1, 9).map(Number);
  const at = (i: number) => f[i] ?? 0;
  return { busy: (at(0) + at(1) + at(2) + at(5) + at(6)) / 100, steal: at(7) / 100 };
}

function statusKb(pid: number, field: 'VmRSS' | 'VmHWM'): number {
  try {
    const m = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return Number(m?.[1] ?? 0);
  } catch {
    return 0;
  }
}

export const rssMB = (pid: number): number => Math.round(statusKb(pid, 'VmRSS') / 1024);
/** The process's peak resident memory since it started (VmHWM). */
export const peakRssMB = (pid: number): number => Math.round(statusKb(pid, 'VmHWM') / 1024);

/** The 1-minute load average. */
export function loadAverage(): number {
  return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
}

/** The pids of the processes whose argv matches (PostgreSQL backends show their database in argv[0]). */
export function findProcesses(match: (argv: string[]) => boolean): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    let argv: string[];
    try {
      argv = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (match(argv)) found.push(Number(entry));
  }
  return found;
}

/**
 * CPU seconds by thread name (threads of one name summed; the main thread is keyed `main`): which of a process's
 * threads is the one that saturates a core.
 */
export function threadCpuSeconds(pid: number): Record<string, number> {
  const out: Record<string, number> = {};
  let tids: string[];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = tid === String(pid) ? 'main' : stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      out[name] = (out[name] ?? 0) + statCpuSeconds(stat);
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}
