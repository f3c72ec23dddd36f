/**
 * The BPA's job store: JSON lines appended under its data folder, replayed when it starts. A job is one file
 * (`jobs/<id>.jsonl`: its spec first, then each host's progress, steps and the end); what each host has installed is
 * `installed.jsonl`. Appends are synchronous, so an event the engine acted on is on disk before the next one; a line
 * cut by a crash mid-write is ignored on replay, and the host's own record (on the host) settles what really
 * happened there.
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type {
  HostProgress,
  InstalledPackage,
  InstallJobSpecParsed,
  ClusterSpecParsed,
  JobState,
} from '../domain/bpa.ts';
import type { ClusterJobSpec } from './cluster.ts';

export type JobEntry =
  | { type: 'job'; kind: 'install'; spec: InstallJobSpecParsed; createdAt: string }
  | { type: 'job'; kind: 'cluster'; spec: ClusterJobSpec; createdAt: string }
  | { type: 'host'; progress: HostProgress }
  | { type: 'step'; step: string }
  | { type: 'done'; state: JobState; finishedAt: string; error?: string };

export interface ReplayedJob {
  id: string;
  head: Extract<JobEntry, { type: 'job' }>;
  hosts: Map<string, HostProgress>;
  steps: string[];
  done?: Extract<JobEntry, { type: 'done' }>;
}

function readLines(path: string): unknown[] {
  const out: unknown[] = [];
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    if (line.trim() === '') continue;
    try {
      out.push(JSON.parse(line));
    } catch {
      // A line cut short by a crash: what it said is redone from the host's own record.
    }
  }
  return out;
}

export class JobJournal {
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
    mkdirSync(join(dir, 'jobs'), { recursive: true });
  }

  append(jobId: string, entry: JobEntry): void {
    appendFileSync(join(this.dir, 'jobs', `${jobId}.jsonl`), `${JSON.stringify(entry)}\n`);
  }

  recordInstalled(record: InstalledPackage): void {
    appendFileSync(join(this.dir, 'installed.jsonl'), `${JSON.stringify(record)}\n`);
  }

  /** The latest record per host and package; a rollback appends the version gone back to. */
  installed(): InstalledPackage[] {
    const path = join(this.dir, 'installed.jsonl');
    if (!existsSync(path)) return [];
    const latest = new Map<string, InstalledPackage>();
    for (const entry of readLines(path) as InstalledPackage[]) latest.set(`${entry.host}\u0000${entry.name}`, entry);
    return [...latest.values()];
  }

  replay(): ReplayedJob[] {
    const jobs: ReplayedJob[] = [];
    for (const file of readdirSync(join(this.dir, 'jobs'))) {
      if (!file.endsWith('.jsonl')) continue;
      const entries = readLines(join(this.dir, 'jobs', file)) as JobEntry[];
      const head = entries[0];
      if (head?.type !== 'job') continue;
      // Journals from before cluster jobs had operations hold a bring-up's spec alone.
      if (head.kind === 'cluster') {
        const spec = head.spec as ClusterJobSpec | ClusterSpecParsed;
        if (!('op' in spec)) {
          head.spec = { op: 'bring-up', cluster: spec.name, spec, add: spec.hosts.map((h) => h.name), remove: [] };
        }
      }
      const job: ReplayedJob = { id: file.slice(0, -'.jsonl'.length), head, hosts: new Map(), steps: [] };
      for (const entry of entries.slice(1)) {
        if (entry.type === 'host') job.hosts.set(entry.progress.host, entry.progress);
        else if (entry.type === 'step') job.steps.push(entry.step);
        else if (entry.type === 'done') job.done = entry;
      }
      jobs.push(job);
    }
    return jobs.sort((a, b) => a.head.createdAt.localeCompare(b.head.createdAt));
  }
}
