/**
 * The state of many simulated edge sites, as their peers would hold it: each host's installed packages (the BPA's
 * records), its Node (cordoned or not, Ready or rebooting, resourceVersion), its pods, its BMC's power state; each
 * site's BPA artifacts and jobs. A job takes `hostStepSeconds` per host (the hosts of one job in parallel, as the
 * BPA's parallelism does) and fails a configured share of hosts, chosen by a hash of site and host so that a rerun
 * fails the same ones.
 *
 * Sites need not be declared: every site shares one layout (hosts and what they have installed at the start) and its
 * state is made on first use, holding only what changed since. 10,000 sites of 3 hosts are a few tens of MB.
 */
import { createHash } from 'node:crypto';

export interface SimHostLayout {
  name: string;
  role: 'control-plane' | 'worker';
}

export interface SimPackage {
  name: string;
  version: string;
  sha256: string;
}

export interface SimLayout {
  hosts: SimHostLayout[];
  /** What every host has installed before anything runs: the profile the sites were installed with. */
  installed: SimPackage[];
  kubeletVersion: string;
}

export interface SimBehaviour {
  /** How long a BPA job works on each of its hosts. */
  hostStepSeconds: number;
  /** After an Ironic reboot: the BMC reports power on after half of it, the Node is Ready again after all of it. */
  rebootSeconds: number;
  /** Share of hosts (0..1) whose installs fail; rollbacks always succeed. */
  failShare: number;
  /** Evictable pods on each Node (each Node also runs one DaemonSet pod, which a drain leaves alone). */
  podsPerHost: number;
  /** Keep each site's event log (cordon, uncordon, job start and end, reboot): for tests. */
  recordEvents: boolean;
}

export const defaultBehaviour: SimBehaviour = {
  hostStepSeconds: 1,
  rebootSeconds: 0,
  failShare: 0,
  podsPerHost: 0,
  recordEvents: false,
};

interface Installed {
  version: string;
  sha256: string;
  at: string;
  /** What the host had before, for a rollback. */
  previous?: { version: string; sha256: string };
}

interface HostState {
  rv: number;
  unschedulable: boolean;
  /** As the last update wrote them (who cordoned the node, for one). */
  annotations?: Record<string, string>;
  /** Bit i set: pod i has been evicted (they come back when the Node is uncordoned, as the scheduler would). */
  evicted: number;
  rebootAt: number;
  /**
   * Set at a reboot, cleared by the timer that then tells the watches: readiness read from the clock could still
   * be false when that timer fires (a timer may fire a millisecond early by Date.now(), more on a loaded loop), and
   * the watch would hear its last change as NotReady and wait for one that never comes.
   */
  booting?: boolean;
  packages: Map<string, Installed>;
}

export interface SimJobHost {
  host: string;
  state: 'pending' | 'running' | 'succeeded' | 'failed';
  step?: string;
  attempts: number;
  packages: {
    name: string;
    version: string;
    from?: string;
    outcome: 'installed' | 'skipped' | 'rolled-back' | 'failed';
  }[];
  error?: string;
}

export interface SimJob {
  id: string;
  action: 'install' | 'rollback';
  hosts: string[];
  packages: SimPackage[];
  createdAt: number;
  endsAt: number;
  /** Set once the job's end has been applied to the hosts. */
  results?: SimJobHost[];
  /** When a client first saw it ended: how long after its end the caller learnt of it. */
  seenEndedAt?: number;
}

interface SimArtifact {
  spec: { type: string; name: string; version: string; sha256: string; size: number; metadata: Record<string, string> };
  offset: number;
  createdAt?: string;
}

/** A job's timing, for the benchmark's breakdown of a host's time. */
export interface SimJobTiming {
  id: string;
  createdAt: number;
  endsAt: number;
  seenEndedAt?: number;
}

export interface SiteState {
  name: string;
  hosts: HostState[];
  artifacts: Map<string, SimArtifact>;
  jobs: Map<string, SimJob>;
  /** SSH key secrets handed to the BPA, by name. */
  secrets: Set<string>;
  /** Jobs not yet applied to the hosts: usually none or one, so that settling costs nothing between jobs. */
  open: SimJob[];
  events: string[] | undefined;
}

/** Something waiting for a Node's changes (a watch). */
export type NodeListener = (site: string, host: number) => void;

export class SimSites {
  layout: SimLayout;
  behaviour: SimBehaviour;
  readonly sites = new Map<string, SiteState>();
  /** Watches by `<site>/<host index>`. */
  readonly listeners = new Map<string, Set<NodeListener>>();
  #rv = 1;
  readonly #startedAt = new Date().toISOString();
  readonly #timers = new Set<NodeJS.Timeout>();

  constructor(layout: SimLayout, behaviour: Partial<SimBehaviour> = {}) {
    this.layout = layout;
    this.behaviour = { ...defaultBehaviour, ...behaviour };
  }

  /** Forgets every site: the next scenario starts from the layout again. */
  reset(layout: SimLayout, behaviour: Partial<SimBehaviour>): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
    this.sites.clear();
    this.listeners.clear();
    this.layout = layout;
    this.behaviour = { ...defaultBehaviour, ...behaviour };
  }

  close(): void {
    for (const t of this.#timers) clearTimeout(t);
    this.#timers.clear();
  }

  nextRv(): number {
    return ++this.#rv;
  }

  get rv(): number {
    return this.#rv;
  }

  get startedAt(): string {
    return this.#startedAt;
  }

  site(name: string): SiteState {
    let site = this.sites.get(name);
    if (!site) {
      const installed = new Date(0).toISOString();
      site = {
        name,
        hosts: this.layout.hosts.map(() => ({
          rv: 1,
          unschedulable: false,
          evicted: 0,
          rebootAt: 0,
          packages: new Map(
            this.layout.installed.map((p) => [p.name, { version: p.version, sha256: p.sha256, at: installed }]),
          ),
        })),
        artifacts: new Map(),
        jobs: new Map(),
        secrets: new Set(),
        open: [],
        events: this.behaviour.recordEvents ? [] : undefined,
      };
      this.sites.set(name, site);
    }
    this.settle(site);
    return site;
  }

  hostIndex(name: string): number {
    return this.layout.hosts.findIndex((h) => h.name === name);
  }

  event(site: SiteState, text: string): void {
    site.events?.push(text);
  }

  /** Node name of a host, as cluster-api-provider-metal3 names it in the test stand-in: `<site>-<host>`. */
  nodeName(site: string, host: string): string {
    return `${site}-${host}`;
  }

  /** The host of a Node name, or -1. */
  nodeHost(site: string, node: string): number {
    return node.startsWith(`${site}-`) ? this.hostIndex(node.slice(site.length + 1)) : -1;
  }

  ready(host: HostState): boolean {
    return host.booting !== true;
  }

  poweredOn(host: HostState): boolean {
    return Date.now() >= host.rebootAt + this.behaviour.rebootSeconds * 500;
  }

  changed(siteName: string, index: number): void {
    const host = this.sites.get(siteName)?.hosts[index];
    if (host) host.rv = this.nextRv();
    for (const listener of this.listeners.get(`${siteName}/${index}`) ?? []) listener(siteName, index);
  }

  listen(site: string, index: number, listener: NodeListener): () => void {
    const key = `${site}/${index}`;
    let set = this.listeners.get(key);
    if (!set) {
      set = new Set();
      this.listeners.set(key, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.listeners.delete(key);
    };
  }

  /** An update of the Node (PUT): what a client may change of it is its cordon and its annotations. */
  updateNode(
    siteName: string,
    index: number,
    unschedulable: boolean,
    annotations: Record<string, string> | undefined,
  ): void {
    const site = this.site(siteName);
    const host = site.hosts[index];
    const layout = this.layout.hosts[index];
    if (!host || !layout) return;
    host.annotations = annotations && Object.keys(annotations).length > 0 ? annotations : undefined;
    if (host.unschedulable === unschedulable) {
      this.changed(siteName, index);
      return;
    }
    host.unschedulable = unschedulable;
    // The scheduler puts the workload back once the node takes pods again.
    if (!unschedulable) host.evicted = 0;
    this.event(site, `${unschedulable ? 'cordon' : 'uncordon'} ${layout.name}`);
    this.changed(siteName, index);
  }

  reboot(siteName: string, index: number): void {
    const site = this.site(siteName);
    const host = site.hosts[index];
    const layout = this.layout.hosts[index];
    if (!host || !layout) return;
    host.rebootAt = Date.now();
    this.event(site, `reboot ${layout.name}`);
    if (this.behaviour.rebootSeconds > 0) {
      host.booting = true;
      this.changed(siteName, index);
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        host.booting = false;
        this.changed(siteName, index);
      }, this.behaviour.rebootSeconds * 1000);
      this.#timers.add(timer);
    }
  }

  /** Deterministic: the same hosts fail on every run. */
  fails(site: string, host: string): boolean {
    if (this.behaviour.failShare <= 0) return false;
    const h = createHash('sha256').update(`${site}/${host}`).digest().readUInt32BE(0);
    return h / 2 ** 32 < this.behaviour.failShare;
  }

  startJob(
    siteName: string,
    spec: { id: string; action: 'install' | 'rollback'; hosts: string[]; packages: SimPackage[] },
  ) {
    const site = this.site(siteName);
    const now = Date.now();
    const job: SimJob = { ...spec, createdAt: now, endsAt: now + this.behaviour.hostStepSeconds * 1000 };
    site.jobs.set(job.id, job);
    site.open.push(job);
    this.event(site, `${job.action} start ${job.hosts.join(',')}`);
    return job;
  }

  /** Applies the jobs whose time has come to their hosts' records. */
  settle(site: SiteState): void {
    if (site.open.length === 0) return;
    const now = Date.now();
    const due = site.open.filter((j) => j.endsAt <= now);
    if (due.length === 0) return;
    site.open = site.open.filter((j) => j.endsAt > now);
    const siteName = site.name;
    for (const job of due.sort((a, b) => a.endsAt - b.endsAt)) {
      const at = new Date(job.endsAt).toISOString();
      job.results = job.hosts.map((hostName) => {
        const host = site.hosts[this.hostIndex(hostName)];
        if (!host) {
          return { host: hostName, state: 'failed', attempts: 1, packages: [], error: `unknown host ${hostName}` };
        }
        if (job.action === 'install' && this.fails(siteName, hostName)) {
          const first = job.packages[0];
          return {
            host: hostName,
            state: 'failed',
            attempts: 3,
            packages: first ? [{ name: first.name, version: first.version, outcome: 'failed' }] : [],
            error: `simulated failure installing ${first?.name ?? 'packages'} (exit 1)`,
          };
        }
        const packages = job.packages.map((p): SimJobHost['packages'][number] => {
          const had = host.packages.get(p.name);
          if (job.action === 'install') {
            if (had?.version === p.version) return { name: p.name, version: p.version, outcome: 'skipped' };
            host.packages.set(p.name, {
              version: p.version,
              sha256: p.sha256,
              at,
              ...(had && { previous: { version: had.version, sha256: had.sha256 } }),
            });
            return { name: p.name, version: p.version, ...(had && { from: had.version }), outcome: 'installed' };
          }
          // A rollback gives up `p.version` for what the host had before; a host not at it is left alone.
          if (had?.version !== p.version || !had.previous) {
            return { name: p.name, version: had?.version ?? p.version, outcome: 'skipped' };
          }
          host.packages.set(p.name, { ...had.previous, at });
          return { name: p.name, version: had.previous.version, from: p.version, outcome: 'rolled-back' };
        });
        return { host: hostName, state: 'succeeded', attempts: 1, packages };
      });
      const failed = job.results.filter((r) => r.state === 'failed').map((r) => r.host);
      this.event(
        site,
        `${job.action} end ${job.hosts.join(',')}${failed.length > 0 ? ` failed ${failed.join(',')}` : ''}`,
      );
    }
  }

  /** The job as the BPA's API shows it (InstallJob). */
  jobView(job: SimJob, withHosts = true) {
    const results = job.results;
    const hosts: SimJobHost[] =
      results ??
      job.hosts.map((host) => ({
        host,
        state: 'running',
        step: `${job.action} ${job.packages.map((p) => `${p.name} ${p.version}`).join(', ')}`,
        attempts: 1,
        packages: [],
      }));
    const count = (state: SimJobHost['state']) => hosts.filter((h) => h.state === state).length;
    const summary = {
      pending: count('pending'),
      running: count('running'),
      succeeded: count('succeeded'),
      failed: count('failed'),
    };
    const state = results ? (summary.failed > 0 ? 'failed' : 'succeeded') : 'running';
    return {
      id: job.id,
      kind: 'install',
      action: job.action,
      state,
      createdAt: new Date(job.createdAt).toISOString(),
      ...(results && { finishedAt: new Date(job.endsAt).toISOString() }),
      summary,
      hosts: withHosts ? hosts : [],
    };
  }
}
