/**
 * Install jobs: packages at given versions on a set of hosts, a bounded number of hosts at once, each host's
 * packages one after another, and one job at a time on a host (also across jobs). Every state change goes to the
 * journal first; a restarted BPA replays it and resumes the jobs that had not ended, and the hosts' own records
 * make anything already done a no-op. kubeadm clusters (cluster.ts) change by jobs of kind `cluster` on the same
 * engine, one at a time per cluster; the clusters' records are folded from those jobs' heads and steps.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { EventEmitter } from 'node:events';
import { PeerError } from '../clients/errors.ts';
import { Limiter } from '../clients/ssh/limiter.ts';
import type {
  BpaHost,
  ClusterSpecParsed,
  ClusterUpgradeParsed,
  HostProgress,
  InstalledPackage,
  InstallJob,
  InstallJobSpecParsed,
  JobAction,
  JobEvent,
  JobState,
  JobSummary,
} from '../domain/bpa.ts';
import type { BinaryPackage } from '../domain/software-profile.ts';
import type { Logger } from '../observability/logger.ts';
import { StoreError } from '../store/errors.ts';
import type { ArtifactCache } from './artifacts.ts';
import {
  applyClusterHead,
  applyClusterStep,
  type ClusterContext,
  type ClusterJobSpec,
  type ClusterRecord,
  kubeconfigPath,
  planReconcile,
  planReset,
  planUpgrade,
  runClusterJob,
  sameVersion,
} from './cluster.ts';
import { type ArtifactSource, runPackage } from './installer.ts';
import type { JobEntry, JobJournal } from './journal.ts';
import type { SshPool } from './secrets.ts';

export interface EngineOptions {
  /** Hosts worked on at once when a job does not say. */
  parallelism: number;
  /** Attempts per package and host when the connection breaks (retryable failures only). */
  attempts: number;
  retryDelayMs: number;
  /** Artifacts up to this size are read once into memory and sent to every host from there. */
  inlineMaxBytes: number;
  commandTimeoutMs: number;
}

export interface EngineDeps {
  artifacts: ArtifactCache;
  journal: JobJournal;
  ssh: SshPool;
  logger: Pick<Logger, 'info' | 'warn' | 'debug' | 'error'>;
  options: EngineOptions;
}

type JobHead = Extract<JobEntry, { type: 'job' }>;

interface LiveJob {
  id: string;
  head: JobHead;
  state: JobState;
  hosts: Map<string, HostProgress>;
  steps: string[];
  finishedAt?: string;
  error?: string;
  events: EventEmitter;
  finished: Promise<void>;
  finish: () => void;
}

/** The engine is stopping: the job stays unfinished in the journal, to be resumed by the next start. */
class Stopping extends Error {}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

function summarise(hosts: Iterable<HostProgress>): JobSummary {
  const summary: JobSummary = { pending: 0, running: 0, succeeded: 0, failed: 0 };
  for (const h of hosts) summary[h.state]++;
  return summary;
}

/** Specs compare as their JSON: both were parsed by the same schema, so their keys come in the same order. */
function same(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class BpaEngine {
  readonly #deps: EngineDeps;
  readonly #jobs = new Map<string, LiveJob>();
  /** One job at a time on a host, by address and port. */
  readonly #hostLocks = new Map<string, Limiter>();
  readonly #installed = new Map<string, InstalledPackage>();
  readonly #clusters = new Map<string, ClusterRecord>();
  #stopping = false;

  constructor(deps: EngineDeps) {
    this.#deps = deps;
  }

  /** A method, not the field: the flag changes while a job awaits, which narrowing would not see. */
  #isStopping(): boolean {
    return this.#stopping;
  }

  get options(): EngineOptions {
    return this.#deps.options;
  }

  /** Replays the journal and resumes every job that had not ended. */
  init(): void {
    for (const record of this.#deps.journal.installed()) this.#installed.set(this.#installedKey(record), record);
    const unfinished: LiveJob[] = [];
    for (const replayed of this.#deps.journal.replay()) {
      const job = this.#live(replayed.id, replayed.head);
      for (const [name, progress] of replayed.hosts) job.hosts.set(name, progress);
      job.steps.push(...replayed.steps);
      if (replayed.head.kind === 'cluster') {
        const spec = replayed.head.spec;
        applyClusterHead(this.#clusters, job.id, spec);
        for (const step of replayed.steps) applyClusterStep(this.#clusters, spec, step);
      }
      if (replayed.done) {
        job.state = replayed.done.state;
        job.finishedAt = replayed.done.finishedAt;
        if (replayed.done.error !== undefined) job.error = replayed.done.error;
        job.finish();
      } else {
        unfinished.push(job);
      }
    }
    // Once every cluster's record is whole: a resumed cluster job reads it.
    for (const job of unfinished) {
      this.#deps.logger.info({ jobId: job.id }, 'resuming an unfinished job');
      this.#launch(job);
    }
  }

  /** Starts a job, or returns the one already started with this id and the same spec. */
  startInstall(spec: InstallJobSpecParsed): { job: InstallJob; created: boolean } {
    return this.#start(spec.id, { type: 'job', kind: 'install', spec, createdAt: new Date().toISOString() });
  }

  /**
   * Brings the cluster up, or reconciles its hosts to the spec's; `created` is false when nothing was to be done or
   * the same spec is being worked on already. Conflict while another job runs on the cluster.
   */
  startCluster(spec: ClusterSpecParsed): { cluster: ClusterRecord; created: boolean } {
    const record = this.#clusters.get(spec.name);
    if (record && this.#busy(record, (job) => job.op !== 'upgrade' && job.op !== 'reset' && same(job.spec, spec))) {
      return { cluster: structuredClone(record), created: false };
    }
    const job = planReconcile(record, spec, existsSync(kubeconfigPath(this.#deps.journal.dir, spec.name)));
    return this.#startClusterJob(record, job);
  }

  /** Upgrades the cluster's hosts to the version; not created when it runs that version or is being upgraded to it. */
  upgradeCluster(name: string, upgrade: ClusterUpgradeParsed): { cluster: ClusterRecord; created: boolean } {
    const record = this.#clusters.get(name);
    if (!record) throw new StoreError('NotFound', `cluster ${name} not found`);
    if (
      this.#busy(record, (job) => job.op === 'upgrade' && sameVersion(job.kubernetesVersion, upgrade.kubernetesVersion))
    ) {
      return { cluster: structuredClone(record), created: false };
    }
    return this.#startClusterJob(record, planUpgrade(record, upgrade));
  }

  /** Resets every host of the cluster, then forgets it; not created when a reset is under way already. */
  resetCluster(name: string): { cluster: ClusterRecord; created: boolean } {
    const record = this.#clusters.get(name);
    if (!record) throw new StoreError('NotFound', `cluster ${name} not found`);
    if (this.#busy(record, (job) => job.op === 'reset')) return { cluster: structuredClone(record), created: false };
    return this.#startClusterJob(record, planReset(record));
  }

  cluster(name: string): ClusterRecord | undefined {
    const record = this.#clusters.get(name);
    return record && structuredClone(record);
  }

  get(id: string): InstallJob | undefined {
    const job = this.#jobs.get(id);
    return job && this.#view(job);
  }

  list(): InstallJob[] {
    return [...this.#jobs.values()].map((j) => ({ ...this.#view(j), hosts: [] }));
  }

  steps(id: string): string[] | undefined {
    return this.#jobs.get(id)?.steps.slice();
  }

  specOf(id: string): JobHead | undefined {
    return this.#jobs.get(id)?.head;
  }

  installed(host?: string): InstalledPackage[] {
    return [...this.#installed.values()].filter((r) => host === undefined || r.host === host);
  }

  /** Calls `listener` for every event of the job until it ends; returns the unsubscribe function. */
  subscribe(id: string, listener: (event: JobEvent) => void): (() => void) | undefined {
    const job = this.#jobs.get(id);
    if (!job) return undefined;
    job.events.on('event', listener);
    return () => job.events.off('event', listener);
  }

  async waitFor(id: string): Promise<InstallJob> {
    const job = this.#jobs.get(id);
    if (!job) throw new StoreError('NotFound', `job ${id} not found`);
    await job.finished;
    return this.#view(job);
  }

  /** Stops taking new work; running jobs stay unfinished in the journal and resume on the next start. */
  async stop(): Promise<void> {
    this.#stopping = true;
    for (const job of this.#jobs.values()) job.events.removeAllListeners();
  }

  #start(requestedId: string | undefined, head: JobHead): { job: InstallJob; created: boolean } {
    const id = requestedId ?? randomUUID();
    const existing = this.#jobs.get(id);
    if (existing) {
      if (JSON.stringify(existing.head.spec) !== JSON.stringify(head.spec)) {
        throw new StoreError('Conflict', `job ${id} exists with another spec`);
      }
      return { job: this.#view(existing), created: false };
    }
    const job = this.#live(id, head);
    this.#deps.journal.append(id, head);
    this.#launch(job);
    return { job: this.#view(job), created: true };
  }

  /**
   * Whether a job runs on the cluster: false when none does, true when it is the one asked for again (`isAsked`);
   * Conflict otherwise, since the cluster changes one job at a time.
   */
  #busy(record: ClusterRecord, isAsked: (job: ClusterJobSpec) => boolean): boolean {
    const job = this.#jobs.get(record.jobId);
    if (!job || job.state === 'succeeded' || job.state === 'failed' || job.head.kind !== 'cluster') return false;
    if (isAsked(job.head.spec)) return true;
    throw new StoreError(
      'Conflict',
      `cluster ${record.name} is busy with job ${job.id} (${record.operation}); try again once it has ended`,
    );
  }

  #startClusterJob(
    record: ClusterRecord | undefined,
    spec: ClusterJobSpec | undefined,
  ): { cluster: ClusterRecord; created: boolean } {
    if (!spec) {
      if (!record) throw new Error('a cluster without a record had nothing to do');
      return { cluster: structuredClone(record), created: false };
    }
    const id = this.#clusterJobId(spec);
    const head: JobHead = { type: 'job', kind: 'cluster', spec, createdAt: new Date().toISOString() };
    const job = this.#live(id, head);
    this.#deps.journal.append(id, head);
    applyClusterHead(this.#clusters, id, spec);
    this.#launch(job);
    const cluster = this.#clusters.get(spec.cluster);
    if (!cluster) throw new Error(`cluster ${spec.cluster} has no record after its job started`);
    return { cluster: structuredClone(cluster), created: true };
  }

  /**
   * `cluster-<name>` for the first bring-up (as before clusters had other jobs), else `cluster-<name>.<op>-<n>`: a
   * cluster name has no dot, so no cluster's ids can be another's.
   */
  #clusterJobId(spec: ClusterJobSpec): string {
    const first = `cluster-${spec.cluster}`;
    if (spec.op === 'bring-up' && !this.#jobs.has(first)) return first;
    for (let n = 1; ; n++) {
      const id = `${first}.${spec.op}-${n}`;
      if (!this.#jobs.has(id)) return id;
    }
  }

  /** The hosts a job installs packages on, each with its progress in the job. */
  #packageHosts(head: JobHead): BpaHost[] {
    if (head.kind === 'install') return head.spec.hosts;
    const spec = head.spec;
    switch (spec.op) {
      case 'bring-up':
      case 'reconcile':
        return spec.spec.hosts.filter((h) => spec.add.includes(h.name));
      case 'upgrade':
        return spec.packages.length > 0 ? spec.hosts : [];
      case 'reset':
        return [];
    }
  }

  #live(id: string, head: JobHead): LiveJob {
    let finish: () => void = () => undefined;
    const finished = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const job: LiveJob = {
      id,
      head,
      state: 'pending',
      hosts: new Map(),
      steps: [],
      events: new EventEmitter(),
      finished,
      finish,
    };
    job.events.setMaxListeners(0);
    for (const host of this.#packageHosts(head))
      job.hosts.set(host.name, { host: host.name, state: 'pending', attempts: 0, packages: [] });
    this.#jobs.set(id, job);
    return job;
  }

  #view(job: LiveJob): InstallJob {
    return {
      id: job.id,
      kind: job.head.kind,
      action: job.head.kind === 'install' ? job.head.spec.action : 'install',
      state: job.state,
      createdAt: job.head.createdAt,
      ...(job.finishedAt !== undefined && { finishedAt: job.finishedAt }),
      summary: summarise(job.hosts.values()),
      hosts: [...job.hosts.values()],
      ...(job.error !== undefined && { error: job.error }),
    };
  }

  #launch(job: LiveJob): void {
    job.state = 'running';
    const run =
      job.head.kind === 'install'
        ? this.#runInstall(
            job,
            job.head.spec.action,
            job.head.spec.packages,
            job.head.spec.hosts,
            job.head.spec.parallelism,
          )
        : runClusterJob(this.#clusterContext(job, job.head.spec), job.head.spec);
    run.then(
      () => {
        const failed = [...job.hosts.values()].some((h) => h.state === 'failed');
        this.#end(job, failed ? 'failed' : 'succeeded', failed ? 'some hosts failed' : undefined);
      },
      (err: unknown) => {
        if (err instanceof Stopping || this.#isStopping()) return;
        this.#deps.logger.error({ jobId: job.id, error: message(err) }, 'job failed');
        this.#end(job, 'failed', message(err));
      },
    );
  }

  #end(job: LiveJob, state: JobState, error: string | undefined): void {
    if (this.#isStopping()) return;
    job.state = state;
    job.finishedAt = new Date().toISOString();
    if (error !== undefined) job.error = error;
    this.#deps.journal.append(job.id, {
      type: 'done',
      state,
      finishedAt: job.finishedAt,
      ...(error !== undefined && { error }),
    });
    const ended = this.#view(job);
    job.events.emit('event', { type: 'done', jobId: job.id, state, summary: ended.summary, job: ended });
    job.finish();
  }

  #clusterContext(job: LiveJob, spec: ClusterJobSpec): ClusterContext {
    return {
      jobId: job.id,
      ssh: this.#deps.ssh,
      logger: this.#deps.logger,
      commandTimeoutMs: this.#deps.options.commandTimeoutMs,
      attempts: this.#deps.options.attempts,
      retryDelayMs: this.#deps.options.retryDelayMs,
      steps: job.steps,
      record: () => this.#clusters.get(spec.cluster),
      installPackages: (packages: BinaryPackage[], hosts: BpaHost[], parallelism: number | undefined) =>
        this.#runInstall(job, 'install', packages, hosts, parallelism).then(() => {
          const failed = [...job.hosts.values()].filter((h) => h.state === 'failed').map((h) => h.host);
          if (failed.length > 0) throw new Error(`installing the packages failed on ${failed.join(', ')}`);
        }),
      onHost: <T>(host: BpaHost, run: () => Promise<T>) => this.#onHost(host, run),
      stepDone: (step: string) => {
        if (this.#isStopping()) throw new Stopping();
        job.steps.push(step);
        this.#deps.journal.append(job.id, { type: 'step', step });
        applyClusterStep(this.#clusters, spec, step);
        job.events.emit('event', { type: 'step', jobId: job.id, step });
      },
      checkStopping: () => {
        if (this.#isStopping()) throw new Stopping();
      },
      dataDir: this.#deps.journal.dir,
    };
  }

  async #onHost<T>(host: BpaHost, run: () => Promise<T>): Promise<T> {
    const key = `${host.address}:${host.port}`;
    let lock = this.#hostLocks.get(key);
    if (!lock) {
      lock = new Limiter(1);
      this.#hostLocks.set(key, lock);
    }
    const release = await lock.acquire();
    try {
      return await run();
    } finally {
      release();
      if (lock.unused) this.#hostLocks.delete(key);
    }
  }

  async #runInstall(
    job: LiveJob,
    action: JobAction,
    packages: BinaryPackage[],
    hosts: BpaHost[],
    parallelism: number | undefined,
  ): Promise<void> {
    const sources = new Map<string, ArtifactSource>();
    if (action === 'install') {
      for (const pkg of packages) {
        const artifact = await this.#deps.artifacts.get(pkg.artifact.sha256);
        if (!artifact) {
          throw new Error(
            `package ${pkg.name} ${pkg.version}: artifact ${pkg.artifact.sha256} is not held by this BPA`,
          );
        }
        const path = this.#deps.artifacts.pathOf(pkg.artifact.sha256);
        sources.set(
          pkg.artifact.sha256,
          artifact.size <= this.#deps.options.inlineMaxBytes
            ? { kind: 'buffer', buffer: await this.#deps.artifacts.buffer(pkg.artifact.sha256) }
            : { kind: 'file', path, size: artifact.size },
        );
      }
    }
    const limiter = new Limiter(parallelism ?? this.#deps.options.parallelism);
    try {
      await Promise.all(
        hosts.map(async (host) => {
          const done = job.hosts.get(host.name);
          if (done?.state === 'succeeded' || done?.state === 'failed') return;
          const release = await limiter.acquire();
          try {
            if (this.#isStopping()) throw new Stopping();
            await this.#onHost(host, () => this.#runHost(job, host, action, packages, sources));
          } finally {
            release();
          }
        }),
      );
    } finally {
      for (const sha of sources.keys()) this.#deps.artifacts.release(sha);
    }
  }

  async #runHost(
    job: LiveJob,
    host: BpaHost,
    action: JobAction,
    packages: BinaryPackage[],
    sources: Map<string, ArtifactSource>,
  ): Promise<void> {
    const progress: HostProgress = { host: host.name, state: 'running', attempts: 0, packages: [] };
    this.#progress(job, progress, true);
    const target = { name: host.name, host: host.address, port: host.port };
    try {
      const ssh = await this.#deps.ssh.client(host.keyRef.name, host.user);
      for (const pkg of packages) {
        for (let attempt = 1; ; attempt++) {
          if (this.#isStopping()) throw new Stopping();
          progress.attempts++;
          progress.step = `${action} ${pkg.name} ${pkg.version}${attempt > 1 ? ` (attempt ${attempt})` : ''}`;
          this.#progress(job, progress, false);
          try {
            const { result, sha256 } = await runPackage(ssh, target, pkg, action, sources.get(pkg.artifact.sha256), {
              timeoutMs: this.#deps.options.commandTimeoutMs,
            });
            progress.packages.push(result);
            if (result.outcome !== 'skipped' || action === 'install') {
              this.#recordInstalled({ host: host.name, name: pkg.name, version: result.version, sha256 });
            }
            break;
          } catch (err) {
            if (this.#isStopping()) throw new Stopping();
            const retryable = err instanceof PeerError && err.retryable;
            if (!retryable || attempt >= this.#deps.options.attempts) throw err;
            this.#deps.logger.warn(
              { jobId: job.id, host: host.name, attempt, error: message(err) },
              'retrying a host after a broken connection',
            );
            await sleep(Math.min(this.#deps.options.retryDelayMs * 2 ** (attempt - 1), 30_000));
          }
        }
      }
      delete progress.step;
      progress.state = 'succeeded';
    } catch (err) {
      if (err instanceof Stopping || this.#isStopping()) throw new Stopping();
      const failed = packages[progress.packages.length];
      if (failed) progress.packages.push({ name: failed.name, version: failed.version, outcome: 'failed' });
      delete progress.step;
      progress.state = 'failed';
      progress.error = message(err);
    }
    this.#progress(job, progress, true);
  }

  #progress(job: LiveJob, progress: HostProgress, durable: boolean): void {
    const snapshot = structuredClone(progress);
    job.hosts.set(progress.host, snapshot);
    if (durable) this.#deps.journal.append(job.id, { type: 'host', progress: snapshot });
    job.events.emit('event', { type: 'host', jobId: job.id, progress: snapshot });
  }

  #recordInstalled(record: Omit<InstalledPackage, 'at'>): void {
    if (record.sha256 === '') return;
    const key = this.#installedKey(record);
    const known = this.#installed.get(key);
    if (known?.version === record.version && known.sha256 === record.sha256) return;
    const full = { ...record, at: new Date().toISOString() };
    this.#installed.set(key, full);
    this.#deps.journal.recordInstalled(full);
  }

  #installedKey(record: Pick<InstalledPackage, 'host' | 'name'>): string {
    return `${record.host}\u0000${record.name}`;
  }
}
