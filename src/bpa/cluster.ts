/**
 * kubeadm clusters without Cluster-API. Every change is a job of the engine (engine.ts) whose steps are journaled:
 *
 * - bring-up and reconcile: the packages on the hosts added, `kubeadm init` on the first control-plane host when the
 *   cluster has none yet, `kubeadm join` on the other hosts added (control planes first: etcd grows one member at a
 *   time; then the workers), `kubeadm reset -f` on the hosts removed (workers first), and the admin kubeconfig;
 * - upgrade: the packages on every host, `kubeadm upgrade apply` on the first control-plane host, then
 *   `kubeadm upgrade node` on the other control planes and then the workers, one after another;
 * - reset: `kubeadm reset -f` on every host, workers first, then the cluster and its kubeconfig are forgotten.
 *
 * A host step is a no-op on a host that has done it (kubeadm's own files tell; for an upgrade, the version the BPA
 * records on the host next to its package records), so that a job resumed after a restart, or a step retried after a
 * broken connection, picks up where it stopped. The cluster's record (spec, members, version, latest job) has no
 * file of its own: it is what the jobs' heads and steps, replayed from the journal in order, make of it.
 */
import { access, chmod, mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PeerError } from '../clients/errors.ts';
import type { SshClient } from '../clients/ssh/index.ts';
import type { BpaHost, ClusterHost, ClusterOperation, ClusterSpecParsed, ClusterUpgradeParsed } from '../domain/bpa.ts';
import type { BinaryPackage } from '../domain/software-profile.ts';
import type { Logger } from '../observability/logger.ts';
import { StoreError } from '../store/errors.ts';
import { exitCodes, shellQuote } from './host-script.ts';
import type { SshPool } from './secrets.ts';

/**
 * A cluster job as its journal head keeps it: with every host it acts on, since the hosts removed are no longer in
 * the spec and the record changes while the job runs.
 */
export type ClusterJobSpec =
  | { op: 'bring-up' | 'reconcile'; cluster: string; spec: ClusterSpecParsed; add: string[]; remove: ClusterHost[] }
  | {
      op: 'upgrade';
      cluster: string;
      kubernetesVersion: string;
      packages: BinaryPackage[];
      parallelism?: number;
      hosts: ClusterHost[];
    }
  | { op: 'reset'; cluster: string; hosts: ClusterHost[] };

export interface ClusterRecord {
  name: string;
  /** The spec last posted: its packages are what hosts added later get. */
  spec: ClusterSpecParsed;
  kubernetesVersion: string;
  /** Initialised or joined, and not reset since; the first control plane is where upgrades are applied. */
  members: ClusterHost[];
  jobId: string;
  operation: ClusterOperation;
}

export interface ClusterContext {
  jobId: string;
  ssh: SshPool;
  logger: Pick<Logger, 'info' | 'warn'>;
  commandTimeoutMs: number;
  /** Attempts per host step when the connection breaks, and the first delay between them (doubled each time). */
  attempts: number;
  retryDelayMs: number;
  /** Steps already done (replayed from the journal on a resume). */
  steps: string[];
  /** The cluster as the steps so far have left it. */
  record: () => ClusterRecord | undefined;
  installPackages: (packages: BinaryPackage[], hosts: BpaHost[], parallelism: number | undefined) => Promise<void>;
  onHost: <T>(host: BpaHost, run: () => Promise<T>) => Promise<T>;
  stepDone: (step: string) => void;
  /** Throws while the engine stops: the job stays unfinished in the journal, to be resumed by the next start. */
  checkStopping: () => void;
  dataDir: string;
}

/** kubeadm where its package put it: HOST_ROOT is set on the lab's simulated hosts only. */
const kubeadm = '"${HOST_ROOT:-}/usr/bin/kubeadm"';
const kubeDir = '"${HOST_ROOT:-}/etc/kubernetes"';
/** The Kubernetes version the host was last initialised, joined or upgraded at, as the BPA recorded it. */
const versionRecord = '"$D/kubernetes-version"';

export function kubeconfigPath(dataDir: string, cluster: string): string {
  return join(clusterDir(dataDir, cluster), 'kubeconfig');
}

function clusterDir(dataDir: string, cluster: string): string {
  return join(dataDir, 'clusters', cluster);
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const isControlPlane = (h: ClusterHost) => h.role === 'control-plane';
const bare = (version: string) => version.replace(/^v/, '');
/** Kubernetes versions are written with or without their "v". */
export const sameVersion = (a: string, b: string) => bare(a) === bare(b);
const conflict = (message: string) => new StoreError('Conflict', message);

/** Negative when `a` is an older release than `b`; pre-release and build parts are not compared. */
function compareVersions(a: string, b: string): number {
  const parts = (v: string) => (bare(v).split(/[-+]/)[0] ?? '').split('.').map(Number);
  const [pa, pb] = [parts(a), parts(b)];
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

/** Words of a join command as kubeadm prints it; anything that is not a plain flag or value is refused. */
export function joinArguments(printed: string): string[] {
  const line = printed
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l.startsWith('kubeadm join '));
  if (line === undefined) throw new Error(`kubeadm printed no join command: ${printed.slice(0, 300)}`);
  const words = line.split(/\s+/).slice(2);
  for (const w of words) {
    if (!/^[A-Za-z0-9._:/=@-]+$/.test(w)) throw new Error(`unexpected word in kubeadm's join command: ${w}`);
  }
  return words;
}

/** A job has started: a bring-up or reconcile makes its spec the cluster's, the others only point at the job. */
export function applyClusterHead(records: Map<string, ClusterRecord>, jobId: string, job: ClusterJobSpec): void {
  const record = records.get(job.cluster);
  if (job.op === 'upgrade' || job.op === 'reset') {
    if (record) Object.assign(record, { jobId, operation: job.op });
    return;
  }
  // A member kept is reached as the new spec says (an address may have changed).
  const fresh = (m: ClusterHost) => job.spec.hosts.find((h) => h.name === m.name) ?? m;
  records.set(job.cluster, {
    name: job.cluster,
    spec: job.spec,
    kubernetesVersion: record?.kubernetesVersion ?? job.spec.kubernetesVersion,
    members: (record?.members ?? []).map(fresh),
    jobId,
    operation: job.op,
  });
}

/** A step of the job is done: hosts join or leave, an upgrade's version becomes the cluster's, a reset forgets it. */
export function applyClusterStep(records: Map<string, ClusterRecord>, job: ClusterJobSpec, step: string): void {
  const record = records.get(job.cluster);
  if (!record) return;
  const [verb = '', ...rest] = step.split(' ');
  const host = rest.at(-1) ?? '';
  if ((verb === 'init' || verb === 'join') && (job.op === 'bring-up' || job.op === 'reconcile')) {
    const joined = job.spec.hosts.find((h) => h.name === host);
    if (joined && !record.members.some((m) => m.name === host)) record.members.push(joined);
  } else if (verb === 'reset') {
    record.members = record.members.filter((m) => m.name !== host);
  } else if (verb === 'kubernetes-version' && job.op === 'upgrade') {
    const upgraded = new Map(job.packages.map((p) => [p.name, p]));
    const added = job.packages.filter((p) => !record.spec.packages.some((q) => q.name === p.name));
    record.kubernetesVersion = job.kubernetesVersion;
    record.spec = {
      ...record.spec,
      kubernetesVersion: job.kubernetesVersion,
      packages: [...record.spec.packages.map((p) => upgraded.get(p.name) ?? p), ...added],
    };
  } else if (verb === 'forget') {
    records.delete(job.cluster);
  }
}

/**
 * The job that takes the cluster from its record to `spec`, or undefined when it is there already. Only membership
 * changes: the endpoint and CIDRs are fixed at bring-up, the version changes by an upgrade, a host's role by its
 * removal and addition.
 */
export function planReconcile(
  record: ClusterRecord | undefined,
  spec: ClusterSpecParsed,
  kubeconfigHeld: boolean,
): ClusterJobSpec | undefined {
  if (!record) return { op: 'bring-up', cluster: spec.name, spec, add: spec.hosts.map((h) => h.name), remove: [] };
  const fixed = (s: ClusterSpecParsed) => JSON.stringify([s.controlPlaneEndpoint, s.podCidr, s.serviceCidr]);
  if (fixed(spec) !== fixed(record.spec)) {
    throw conflict(`cluster ${spec.name}: the control-plane endpoint and the CIDRs cannot change; reset it first`);
  }
  if (!sameVersion(spec.kubernetesVersion, record.kubernetesVersion)) {
    throw conflict(
      `cluster ${spec.name} runs Kubernetes ${record.kubernetesVersion}, not ${spec.kubernetesVersion}: upgrade it (POST /v1/clusters/${spec.name}/upgrade)`,
    );
  }
  const wanted = new Map(spec.hosts.map((h) => [h.name, h]));
  const members = new Set(record.members.map((m) => m.name));
  let moved = false;
  for (const m of record.members) {
    const w = wanted.get(m.name);
    if (w === undefined) continue;
    if (w.role !== m.role) {
      throw conflict(`host ${m.name} cannot turn from ${m.role} into ${w.role}: remove it, then add it back`);
    }
    if (JSON.stringify(w) !== JSON.stringify(m)) moved = true;
  }
  const add = spec.hosts.filter((h) => !members.has(h.name)).map((h) => h.name);
  const remove = record.members.filter((m) => !wanted.has(m.name));
  if (add.length === 0 && remove.length === 0 && !moved && kubeconfigHeld) return undefined;
  return { op: 'reconcile', cluster: spec.name, spec, add, remove };
}

/** The upgrade job, or undefined when the cluster runs that version already. */
export function planUpgrade(record: ClusterRecord, upgrade: ClusterUpgradeParsed): ClusterJobSpec | undefined {
  if (sameVersion(upgrade.kubernetesVersion, record.kubernetesVersion)) return undefined;
  if (compareVersions(upgrade.kubernetesVersion, record.kubernetesVersion) < 0) {
    throw conflict(
      `cluster ${record.name} runs Kubernetes ${record.kubernetesVersion}: kubeadm does not downgrade to ${upgrade.kubernetesVersion}`,
    );
  }
  const controlPlanes = record.members.filter(isControlPlane);
  if (controlPlanes.length === 0)
    throw conflict(`cluster ${record.name} has no control-plane host up: bring it up first`);
  return {
    op: 'upgrade',
    cluster: record.name,
    kubernetesVersion: upgrade.kubernetesVersion,
    packages: upgrade.packages ?? [],
    ...(record.spec.parallelism !== undefined && { parallelism: record.spec.parallelism }),
    hosts: [...controlPlanes, ...record.members.filter((h) => !isControlPlane(h))],
  };
}

/**
 * Every host the cluster has or was to have (a host whose join failed may hold half of kubeadm's files): workers
 * first, then the control planes with the first one last.
 */
export function planReset(record: ClusterRecord): ClusterJobSpec {
  const hosts = [...record.members, ...record.spec.hosts.filter((h) => !record.members.some((m) => m.name === h.name))];
  return {
    op: 'reset',
    cluster: record.name,
    hosts: [...hosts.filter((h) => !isControlPlane(h)), ...hosts.filter(isControlPlane).reverse()],
  };
}

/**
 * One kubeadm command on a host. Under the BPA's lock on the host (the package scripts' lock), with its output kept
 * in files rather than sent down the connection: a BPA gone meanwhile leaves the command to finish, and the step's
 * retry waits for it and then finds it done (`done`). `then` records what was done, before the output is told. The
 * output holds join tokens and certificate keys: readable by root alone, and gone once told.
 */
function hostScript(opts: { command: string; done?: string; then?: string }): string {
  return [
    "trap '' PIPE HUP",
    'D="${HOST_ROOT:-}/var/lib/icn-bpa"',
    `mkdir -p "$D" && exec 9>>"$D/lock" && flock 9 || exit ${exitCodes.lock}`,
    ...(opts.done === undefined ? [] : [`if ${opts.done}; then echo "already done"; exit 0; fi`]),
    // The files alone are private: kubeadm itself keeps the shell's umask.
    '(umask 077; : >"$D/kubeadm.out"; : >"$D/kubeadm.err")',
    `${opts.command} >"$D/kubeadm.out" 2>"$D/kubeadm.err"; rc=$?`,
    ...(opts.then === undefined ? [] : [`if [ "$rc" -eq 0 ]; then ${opts.then}; fi`]),
    'cat "$D/kubeadm.out"; cat "$D/kubeadm.err" >&2; rm -f "$D/kubeadm.out" "$D/kubeadm.err"',
    'exit "$rc"',
  ].join('\n');
}

async function run(ssh: SshClient, host: BpaHost, what: string, script: string, timeoutMs: number): Promise<string> {
  const result = await ssh.exec({ host: host.address, port: host.port }, script, { timeoutMs });
  if (result.exitCode === exitCodes.lock) {
    throw new PeerError('bpa', `host ${host.name}: cannot take the BPA lock on the host`, {
      retryable: true,
      reason: 'HostError',
    });
  }
  if (result.exitCode !== 0) {
    throw new PeerError(
      'bpa',
      `host ${host.name}: ${what} exited ${result.exitCode ?? result.signal ?? '?'}: ${(result.stderr.trim() || result.stdout.trim()).slice(-1000)}`,
      { retryable: false, reason: 'KubeadmFailed' },
    );
  }
  return result.stdout;
}

/** A command on a host, retried while the connection breaks (each step is a no-op once done, so a retry is safe). */
async function onHost(ctx: ClusterContext, host: BpaHost, what: string, script: string): Promise<string> {
  for (let attempt = 1; ; attempt++) {
    ctx.checkStopping();
    try {
      const ssh = await ctx.ssh.client(host.keyRef.name, host.user);
      return await ctx.onHost(host, () => run(ssh, host, what, script, ctx.commandTimeoutMs));
    } catch (err) {
      ctx.checkStopping();
      if (!(err instanceof PeerError && err.retryable) || attempt >= ctx.attempts) throw err;
      ctx.logger.warn(
        { jobId: ctx.jobId, host: host.name, attempt, error: err.message },
        'retrying a kubeadm step after a broken connection',
      );
      await sleep(Math.min(ctx.retryDelayMs * 2 ** (attempt - 1), 30_000));
    }
  }
}

export function runClusterJob(ctx: ClusterContext, job: ClusterJobSpec): Promise<void> {
  switch (job.op) {
    case 'bring-up':
    case 'reconcile':
      return runReconcile(ctx, job);
    case 'upgrade':
      return runUpgrade(ctx, job);
    case 'reset':
      return runReset(ctx, job);
  }
}

async function runReconcile(
  ctx: ClusterContext,
  job: Extract<ClusterJobSpec, { op: 'bring-up' | 'reconcile' }>,
): Promise<void> {
  const { spec } = job;
  const done = (step: string) => ctx.steps.includes(step);
  const members = () => ctx.record()?.members ?? [];
  const isMember = (name: string) => members().some((m) => m.name === name);
  const leaving = (name: string) => job.remove.some((h) => h.name === name);
  // Join tokens come from a control plane that stays, when there is one.
  const issuer = () => {
    const cps = members().filter(isControlPlane);
    return cps.find((h) => !leaving(h.name)) ?? cps[0];
  };
  const adding = spec.hosts.filter((h) => job.add.includes(h.name));
  const version = bare(ctx.record()?.kubernetesVersion ?? spec.kubernetesVersion);
  const recordVersion = `printf '%s\\n' ${shellQuote(version)} > ${versionRecord}`;

  if (adding.length > 0 && !done('packages')) {
    await ctx.installPackages(spec.packages, adding, spec.parallelism);
    ctx.stepDone('packages');
  }

  if (issuer() === undefined) {
    const first = adding.find(isControlPlane);
    if (!first) throw new Error(`cluster ${spec.name} has no control-plane host to initialise`);
    const endpoint = `${spec.controlPlaneEndpoint.host}:${spec.controlPlaneEndpoint.port}`;
    const args = [
      `--kubernetes-version=${spec.kubernetesVersion}`,
      `--control-plane-endpoint=${endpoint}`,
      `--pod-network-cidr=${spec.podCidr}`,
      `--service-cidr=${spec.serviceCidr}`,
      `--node-name=${first.name}`,
    ];
    await onHost(
      ctx,
      first,
      'kubeadm init',
      hostScript({
        done: `[ -f ${kubeDir}/admin.conf ]`,
        command: `${kubeadm} init ${args.map(shellQuote).join(' ')}`,
        then: recordVersion,
      }),
    );
    ctx.stepDone(`init ${first.name}`);
  }

  // One by one: control planes first (etcd grows one member at a time), then the workers.
  for (const host of [...adding.filter(isControlPlane), ...adding.filter((h) => !isControlPlane(h))]) {
    if (isMember(host.name)) continue;
    const from = issuer();
    if (!from) throw new Error(`cluster ${spec.name} has no control-plane host to join ${host.name} to`);
    const joinWords = joinArguments(
      await onHost(
        ctx,
        from,
        'kubeadm token create',
        hostScript({ command: `${kubeadm} token create --print-join-command` }),
      ),
    );
    const extra: string[] = [`--node-name=${host.name}`];
    if (isControlPlane(host)) {
      const printed = await onHost(
        ctx,
        from,
        'kubeadm init phase upload-certs',
        hostScript({ command: `${kubeadm} init phase upload-certs --upload-certs` }),
      );
      const key = printed.trim().split('\n').at(-1)?.trim() ?? '';
      if (!/^[a-f0-9]{64}$/.test(key)) throw new Error(`kubeadm printed no certificate key on ${from.name}`);
      extra.push('--control-plane', `--certificate-key=${key}`);
    }
    await onHost(
      ctx,
      host,
      'kubeadm join',
      hostScript({
        done: `[ -f ${kubeDir}/kubelet.conf ]`,
        command: `${kubeadm} join ${[...joinWords, ...extra].map(shellQuote).join(' ')}`,
        then: recordVersion,
      }),
    );
    ctx.stepDone(`join ${host.name}`);
  }

  // After the joins, so that the cluster never has fewer control planes than it is to have.
  for (const host of [...job.remove.filter((h) => !isControlPlane(h)), ...job.remove.filter(isControlPlane)]) {
    if (!isMember(host.name)) continue;
    await resetHost(ctx, host);
  }

  const held = await access(kubeconfigPath(ctx.dataDir, spec.name)).then(
    () => true,
    () => false,
  );
  // A cluster initialised by this job has a new admin.conf; one kept from before a reset would be stale.
  if (!done('kubeconfig') && (!held || ctx.steps.some((step) => step.startsWith('init ')))) {
    const from = issuer();
    if (!from) throw new Error(`cluster ${spec.name} has no control-plane host to read the kubeconfig from`);
    const kubeconfig = await onHost(ctx, from, 'reading admin.conf', `cat ${kubeDir}/admin.conf`);
    await writeKubeconfig(ctx.dataDir, spec.name, kubeconfig);
    ctx.stepDone('kubeconfig');
  }
  ctx.logger.info(
    { jobId: ctx.jobId, cluster: spec.name, added: job.add, removed: job.remove.map((h) => h.name) },
    job.op === 'bring-up' ? 'cluster is up' : 'cluster reconciled',
  );
}

async function runUpgrade(ctx: ClusterContext, job: Extract<ClusterJobSpec, { op: 'upgrade' }>): Promise<void> {
  const done = (step: string) => ctx.steps.includes(step);
  const version = bare(job.kubernetesVersion);
  const [first, ...others] = job.hosts;
  if (!first) throw new Error(`cluster ${job.cluster} has no host to upgrade`);

  if (job.packages.length > 0 && !done('packages')) {
    await ctx.installPackages(job.packages, job.hosts, job.parallelism);
    ctx.stepDone('packages');
  }
  const upgrade = (host: ClusterHost, args: string) =>
    onHost(
      ctx,
      host,
      `kubeadm upgrade ${args.split(' ')[0] ?? ''}`,
      hostScript({
        done: `[ "$(cat ${versionRecord} 2>/dev/null)" = ${shellQuote(version)} ]`,
        command: `${kubeadm} upgrade ${args}`,
        then: `printf '%s\\n' ${shellQuote(version)} > ${versionRecord}`,
      }),
    );
  if (!done(`upgrade apply ${first.name}`)) {
    await upgrade(first, `apply ${shellQuote(`v${version}`)} -y`);
    ctx.stepDone(`upgrade apply ${first.name}`);
  }
  for (const host of others) {
    if (done(`upgrade node ${host.name}`)) continue;
    await upgrade(host, 'node');
    ctx.stepDone(`upgrade node ${host.name}`);
  }
  ctx.stepDone(`kubernetes-version ${job.kubernetesVersion}`);
  ctx.logger.info({ jobId: ctx.jobId, cluster: job.cluster, version: job.kubernetesVersion }, 'cluster upgraded');
}

async function runReset(ctx: ClusterContext, job: Extract<ClusterJobSpec, { op: 'reset' }>): Promise<void> {
  for (const host of job.hosts) {
    if (ctx.steps.includes(`reset ${host.name}`)) continue;
    await resetHost(ctx, host);
  }
  await rm(clusterDir(ctx.dataDir, job.cluster), { recursive: true, force: true });
  ctx.stepDone('forget');
  ctx.logger.info({ jobId: ctx.jobId, cluster: job.cluster }, 'cluster reset');
}

/** kubeadm reset unless the host holds none of kubeadm's files (reset already, or never joined). */
async function resetHost(ctx: ClusterContext, host: ClusterHost): Promise<void> {
  await onHost(
    ctx,
    host,
    'kubeadm reset',
    hostScript({
      done: `[ -z "$(find ${kubeDir} -type f 2>/dev/null | head -n 1)" ]`,
      command: `${kubeadm} reset -f`,
      then: `rm -f ${versionRecord}`,
    }),
  );
  ctx.stepDone(`reset ${host.name}`);
}

async function writeKubeconfig(dataDir: string, cluster: string, kubeconfig: string): Promise<void> {
  const path = kubeconfigPath(dataDir, cluster);
  await mkdir(clusterDir(dataDir, cluster), { recursive: true, mode: 0o700 });
  await writeFile(`${path}.tmp`, kubeconfig, { mode: 0o600 });
  await chmod(`${path}.tmp`, 0o600);
  await rename(`${path}.tmp`, path);
}
