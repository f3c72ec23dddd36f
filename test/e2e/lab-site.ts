/**
 * A whole global controller against the lab's real peers, for the end-to-end tests: the Temporal dev server, the
 * inventory on the machine's PostgreSQL (shared by the API here and the worker, a child process that a test can kill
 * and start again), the API, icnctl as a process; a site of three simulated hosts (sshd) with its own BPA, the lab's
 * Ironic (fake-hardware) behind the Cluster-API/metal3 stand-in, the lab kube-apiserver as both its bootstrap and its
 * application cluster, and real helm.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import YAML from 'yaml';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { labUp } from '../../deploy/dev/lab/index.ts';
import type { IronicLabInfo } from '../../deploy/dev/lab/ironic.ts';
import type { KubernetesLabInfo } from '../../deploy/dev/lab/kubernetes.ts';
import { type PostgresLabInfo, postgresUrl } from '../../deploy/dev/lab/postgres.ts';
import { type SshHostsInfo, startSshHosts, stopSshHosts } from '../../deploy/dev/lab/ssh-hosts.ts';
import { ensureGoTool, helm } from '../../deploy/dev/tools.ts';
import { HelmClient } from '../../src/clients/helm/index.ts';
import type { Store } from '../../src/store/index.ts';
import { type ClusterApiStandIn, startClusterApiStandIn } from '../standins/cluster-api-controller.ts';
import { buildTestApi, tokens } from '../support/api.ts';
import { labPeer } from '../support/lab.ts';
import { openTestStore } from '../support/store.ts';
import { startTemporal, uniqueName } from '../support/temporal.ts';
import { testEnv } from '../support/test-codec-keys.ts';
import { labPackage, startBpa, type TestBpa, token as bpaToken } from '../bpa/support.ts';

const icnctlPath = fileURLToPath(new URL('../../src/cli/icnctl.ts', import.meta.url));
const workerPath = fileURLToPath(new URL('../../src/worker/main.ts', import.meta.url));
const charts = fileURLToPath(new URL('../fixtures/charts', import.meta.url));

export interface LabSite {
  site: string;
  env: TestWorkflowEnvironment;
  store: Store;
  hosts: SshHostsInfo;
  bpa: TestBpa;
  kube: KubernetesLabInfo;
  ironic: IronicLabInfo;
  standIn: ClusterApiStandIn;
  apiUrl: string;
  taskQueue: string;
  /** Namespace of the site's Helm releases in the application cluster. */
  chartNamespace: string;
  helmBinary: string;
  work: string;
  icnctl(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  startWorker(): Promise<void>;
  /** SIGKILL, no goodbye: what a crashed machine does. */
  killWorker(): Promise<void>;
  workerLog(): string;
  /** Writes the site (with `hostCount` hosts), its secrets and profiles 1.0.0 and 1.1.0 for `icnctl apply -f`. */
  manifests(artifacts: LabArtifacts, opts?: { hostCount?: number }): string;
  stop(): Promise<void>;
}

export interface LabSiteOptions {
  standIn?: Parameters<typeof startClusterApiStandIn>[0]['failOn'];
  /** Simulated hosts to start (default 3); the site's spec lists as many as `manifests` is asked for. */
  sshHosts?: number;
}

/** A site named `<prefix>-<random>`: Ironic nodes, namespaces and releases never collide across runs. */
export async function startLabSite(prefix: string, opts: LabSiteOptions = {}): Promise<LabSite> {
  await labUp(['ironic', 'kubernetes', 'postgres']);
  const site = uniqueName(prefix);
  const kube = labPeer('kubernetes') as KubernetesLabInfo;
  const ironic = labPeer('ironic') as IronicLabInfo;
  const work = mkdtempSync(join(tmpdir(), 'icn-e2e-'));
  const helmBinary = join(ensureGoTool(helm), 'helm');
  const hosts = await startSshHosts({ count: opts.sshHosts ?? 3, dir: join(work, 'hosts') });
  const bpa = await startBpa(join(work, 'bpa'), hosts);
  const env = await startTemporal();
  const store = await openTestStore('postgres');
  const taskQueue = uniqueName('e2e');
  const api = await buildTestApi({ store, temporal: env.client, env: { ICN_TASK_QUEUE: taskQueue } });
  const apiUrl = await api.listen({ host: '127.0.0.1', port: 0 });
  const standIn = startClusterApiStandIn({
    kubeconfig: kube.kubeconfig,
    ironic: { url: ironic.url },
    namespaces: [`site-${site}`],
    ...(opts.standIn && { failOn: opts.standIn }),
  });
  const databaseUrl = await databaseUrlOf(store);

  let worker: ChildProcess | undefined;
  let log = '';
  const chartNamespace = `e2e-${site}`.slice(0, 63);

  const lab: LabSite = {
    site,
    env,
    store,
    hosts,
    bpa,
    kube,
    ironic,
    standIn,
    apiUrl,
    taskQueue,
    chartNamespace,
    helmBinary,
    work,
    async icnctl(...args) {
      try {
        const { stdout, stderr } = await promisify(execFile)(
          process.execPath,
          [icnctlPath, '--server', apiUrl, ...args],
          // Bounded, so that a stuck operation fails the test with what icnctl showed so far.
          { env: { ...process.env, ICN_API_TOKEN: tokens.admin }, maxBuffer: 16 * 2 ** 20, timeout: 300_000 },
        );
        return { code: 0, stdout, stderr };
      } catch (err) {
        const e = err as { code: number; stdout: string; stderr: string };
        return { code: e.code, stdout: e.stdout, stderr: e.stderr };
      }
    },
    async startWorker() {
      const child = spawn(process.execPath, [workerPath], {
        env: {
          ...process.env,
          ...testEnv({
            TEMPORAL_ADDRESS: env.address,
            TEMPORAL_NAMESPACE: 'icn',
            ICN_TASK_QUEUE: taskQueue,
            DATABASE_URL: databaseUrl,
            ICN_DATA_DIR: join(work, 'worker-data'),
            // The API's artifact folder: in production a volume both mount.
            ICN_ARTIFACT_DIR: dirname(dirname(dirname(store.artifacts.files.pathOf('0'.repeat(64))))),
            ICN_HELM_BINARY: helmBinary,
            LOG_LEVEL: 'warn',
          }),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      child.stdout.on('data', (c: Buffer) => (log += c.toString()));
      child.stderr.on('data', (c: Buffer) => (log += c.toString()));
      worker = child;
      // The worker is up once it polls; a start is quick, a crash at start shows in its log.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      if (child.exitCode !== null) throw new Error(`the worker exited ${child.exitCode}: ${log}`);
    },
    async killWorker() {
      const child = worker;
      if (!child || child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    },
    workerLog: () => log,
    manifests(artifacts, mopts = {}) {
      return writeManifests(lab, artifacts, mopts.hostCount ?? 3);
    },
    async stop() {
      await lab.killWorker();
      await standIn.stop();
      await api.close();
      await store.close();
      await env.teardown();
      await bpa.close();
      await stopSshHosts(join(work, 'hosts'));
      rmSync(work, { recursive: true, force: true });
    },
  };
  return lab;
}

/** The PostgreSQL URL of a test store's database (openTestStore names it; the worker needs it too). */
async function databaseUrlOf(store: Store): Promise<string> {
  const rows = await store.sql.query<{ db: string }>('SELECT current_database() AS db');
  const info = labPeer('postgres') as PostgresLabInfo;
  return postgresUrl(info, rows[0]?.db);
}

interface Artifact {
  sha256: string;
}

function digestOf(file: string): Artifact {
  return { sha256: createHash('sha256').update(readFileSync(file)).digest('hex') };
}

export interface LabArtifacts {
  osImage: string;
  packages: Record<string, { file: string; sha256: string; version: string }>;
  charts: Record<string, { file: string; sha256: string; version: string }>;
}

/** The files the profiles name: uploaded by the test with `icnctl upload` (the real path an operator takes). */
export async function buildArtifacts(lab: LabSite): Promise<LabArtifacts> {
  const dir = join(lab.work, 'artifacts');
  mkdirSync(dir, { recursive: true });
  const osImage = join(dir, 'edge-os.qcow2');
  writeFileSync(osImage, `lab os image for ${lab.site}\n`);
  const packages: LabArtifacts['packages'] = {};
  for (const [name, version] of [
    ['containerd', '1.7.0'],
    ['kubelet', '1.34.2'],
    ['kubelet', '1.34.3'],
  ] as const) {
    const p = labPackage(dir, 'kubelet', name, version);
    packages[`${name}@${version}`] = { file: p.file, sha256: p.pkg.artifact.sha256, version };
  }
  const charts: LabArtifacts['charts'] = {};
  const packager = new HelmClient({ helmBinary: lab.helmBinary, kubeconfigPath: lab.kube.kubeconfig });
  try {
    for (const version of ['0.1.0', '0.2.0']) {
      const file = await packager.packageChart(join(chartsDir(), 'icn-test-app'), dir, {
        version,
        appVersion: version,
      });
      charts[`icn-test-app@${version}`] = { file, ...digestOf(file), version };
    }
  } finally {
    packager.close();
  }
  return { osImage, packages, charts };
}

function chartsDir(): string {
  return charts;
}

/** A profile: containerd and kubelet, and the test chart; 1.1.0 changes kubelet (1.34.3) and the chart (0.2.0). */
function profile(lab: LabSite, a: LabArtifacts, version: '1.0.0' | '1.1.0') {
  const kubelet = a.packages[version === '1.0.0' ? 'kubelet@1.34.2' : 'kubelet@1.34.3'];
  const containerd = a.packages['containerd@1.7.0'];
  const chart = a.charts[version === '1.0.0' ? 'icn-test-app@0.1.0' : 'icn-test-app@0.2.0'];
  if (!kubelet || !containerd || !chart) throw new Error('lab artifacts missing');
  const pkg = (name: string, p: { sha256: string; version: string }) => ({
    name,
    version: p.version,
    artifact: { sha256: p.sha256 },
    install: 'sh "$ICN_PACKAGE_FILE" install',
    verify: 'sh "$ICN_PACKAGE_FILE" verify',
  });
  return {
    apiVersion: 'icn.akraino.org/v1alpha1',
    kind: 'SoftwareProfile',
    metadata: { name: `${lab.site}-profile` },
    spec: {
      version,
      osImage: { sha256: digestOf(a.osImage).sha256 },
      binaryPackages: [pkg('containerd', containerd), pkg('kubelet', kubelet)],
      containerPackages: [
        {
          name: 'icn-test-app',
          version: chart.version,
          chart: { sha256: chart.sha256 },
          namespace: lab.chartNamespace,
          // The lab has no scheduler: the chart's pod names its node (the site's first host).
          values: { nodeName: `${lab.site}-host-1`, config: { profile: version } },
        },
      ],
    },
  };
}

function writeManifests(lab: LabSite, a: LabArtifacts, hostCount: number): string {
  const dir = join(lab.work, 'manifests');
  mkdirSync(dir, { recursive: true });
  const secret = (name: string, type: string, stringData: Record<string, string>) => ({
    apiVersion: 'icn.akraino.org/v1alpha1',
    kind: 'Secret',
    metadata: { name },
    type,
    stringData,
  });
  const secrets = [
    secret(`${lab.site}-bmc`, 'bmc-credentials', { username: 'lab', password: 'lab-bmc-password-not-secret' }),
    secret(`${lab.site}-ssh`, 'ssh-key', { privateKey: readFileSync(lab.hosts.clientKeyPath, 'utf8') }),
    secret(`${lab.site}-bpa`, 'token', { token: bpaToken }),
    secret(`${lab.site}-bootstrap`, 'kubeconfig', { kubeconfig: readFileSync(lab.kube.kubeconfig, 'utf8') }),
  ];
  const hosts = lab.hosts.hosts.slice(0, hostCount).map((h, i) => ({
    name: `host-${i + 1}`,
    role: i === 0 ? 'control-plane' : 'worker',
    bmc: { address: `fake-hardware://${lab.site}/${i + 1}`, credentialsRef: { name: `${lab.site}-bmc` } },
    bootMacAddress: `52:54:00:e2:${createHash('sha256').update(lab.site).digest('hex').slice(0, 2)}:${(i + 1).toString(16).padStart(2, '0')}`,
    ssh: { address: h.host, port: h.port, user: 'root', keyRef: { name: `${lab.site}-ssh` } },
  }));
  const siteDoc = {
    apiVersion: 'icn.akraino.org/v1alpha1',
    kind: 'Site',
    metadata: { name: lab.site, labels: { tier: 'e2e' } },
    spec: {
      endpoints: {
        ironicUrl: lab.ironic.url,
        bpaUrl: lab.bpa.url,
        bpaTokenRef: { name: `${lab.site}-bpa` },
        bootstrapKubeconfigRef: { name: `${lab.site}-bootstrap` },
      },
      cluster: {
        kubernetesVersion: 'v1.34.2',
        controlPlaneEndpoint: { host: '10.77.0.10' },
        provisioner: 'cluster-api',
      },
      softwareProfile: { name: `${lab.site}-profile`, version: '1.0.0' },
      hosts,
    },
  };
  const docs = [...secrets, profile(lab, a, '1.0.0'), profile(lab, a, '1.1.0'), siteDoc];
  writeFileSync(join(dir, 'site.yaml'), docs.map((d) => YAML.stringify(d)).join('---\n'));
  return dir;
}

/** Uploads the lab artifacts with `icnctl upload` and applies secrets, profiles and the site with `icnctl apply`. */
export async function applyLabSite(lab: LabSite, opts: { hostCount?: number } = {}): Promise<LabArtifacts> {
  const artifacts = await buildArtifacts(lab);
  const uploads: [string, string, string, string][] = [
    [artifacts.osImage, 'os-image', `${lab.site}-os`, '1.0.0'],
    ...Object.entries(artifacts.packages).map(([key, p]): [string, string, string, string] => [
      p.file,
      'binary-package',
      key.split('@')[0] ?? key,
      p.version,
    ]),
    ...Object.values(artifacts.charts).map((c): [string, string, string, string] => [
      c.file,
      'helm-chart',
      'icn-test-app',
      c.version,
    ]),
  ];
  for (const [file, type, name, version] of uploads) {
    const r = await lab.icnctl('upload', file, '--type', type, '--name', name, '--version', version);
    if (r.code !== 0) throw new Error(`icnctl upload ${file}: ${r.stderr}`);
  }
  const applied = await lab.icnctl('apply', '-f', lab.manifests(artifacts, opts));
  if (applied.code !== 0) throw new Error(`icnctl apply: ${applied.stdout}\n${applied.stderr}`);
  return artifacts;
}

const ms = (t: { seconds?: unknown; nanos?: number | null } | null | undefined): number =>
  Number(t?.seconds ?? 0) * 1000 + (t?.nanos ?? 0) / 1e6;

/** Where an operation spent its time, from its history: wall seconds per activity type (parallel ones overlap). */
export async function activityTimes(lab: LabSite, workflowId: string): Promise<string> {
  const history = await lab.env.client.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = new Map<number, { type: string; at: number }>();
  const spent = new Map<string, { first: number; last: number; count: number }>();
  for (const e of history.events ?? []) {
    const id = Number(e.eventId);
    const at = ms(e.eventTime);
    const s = e.activityTaskScheduledEventAttributes;
    if (s) scheduled.set(id, { type: s.activityType?.name ?? '?', at });
    const done = e.activityTaskCompletedEventAttributes ?? e.activityTaskFailedEventAttributes;
    if (done) {
      const from = scheduled.get(Number(done.scheduledEventId));
      if (!from) continue;
      const cur = spent.get(from.type);
      spent.set(from.type, {
        first: Math.min(cur?.first ?? from.at, from.at),
        last: Math.max(cur?.last ?? at, at),
        count: (cur?.count ?? 0) + 1,
      });
    }
  }
  const events = history.events ?? [];
  const wall = (ms(events.at(-1)?.eventTime) - ms(events[0]?.eventTime)) / 1000;
  const parts = [...spent].map(([type, t]) => `${type}×${t.count} ${((t.last - t.first) / 1000).toFixed(1)} s`);
  return `workflow ${wall.toFixed(1)} s, ${events.length} events: ${parts.join(', ')}`;
}
