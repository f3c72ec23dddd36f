// Needs: the kubernetes lab peer (kube-apiserver + kwok) and helm (tools cache).
/**
 * The production charts (deploy/charts): `helm lint`; `helm template` with the default values and with a values file
 * that turns every feature on, each rendered object checked by the lab's real API server (a server-side dry run, in a
 * namespace that enforces the `restricted` Pod Security Standard, pods of each Deployment's template included) and by
 * a JSON-schema validator (ajv) against the API server's own OpenAPI schemas; the values files against each chart's
 * values.schema.json with the same validator; then `helm install` of both charts into a fresh namespace, their pods
 * made by a test-only stand-in for the deployment controller and the scheduler (the lab runs neither) and run by
 * kwok, and `helm uninstall`.
 */
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import Ajv from 'ajv';
import { parse, parseAllDocuments } from 'yaml';
import { labUp } from '../../deploy/dev/lab/index.ts';
import { goModuleDir } from '../../deploy/dev/lab/kubernetes/crds.ts';
import type { KubernetesLabInfo } from '../../deploy/dev/lab/kubernetes.ts';
import { ensureGoTool, helm } from '../../deploy/dev/tools.ts';
import { HelmClient, helmEnv } from '../../src/clients/helm/index.ts';
import {
  findCondition,
  KubernetesClient,
  type KubeObject,
  type ObjectRef,
  refOf,
} from '../../src/clients/kubernetes/index.ts';
import { KubeTransport } from '../../src/clients/kubernetes/transport.ts';
import { labPeer } from '../support/lab.ts';

const chartsDir = join(import.meta.dirname, '..', '..', 'deploy', 'charts');
type ChartName = 'icn-global' | 'icn-site-agent';
const chartDir = (chart: ChartName): string => join(chartsDir, chart);
/** A namespace of its own per run (the lab never deletes namespaces: no namespace controller runs). */
const namespace = `charts-${Date.now().toString(36)}`;
const serviceMonitorApi = 'monitoring.coreos.com/v1/ServiceMonitor';
/** Marks what the stand-in controllers create, so that cleanup finds it. */
const standInLabel = 'test.icn.akraino.org/stand-in';
const prometheusOperator = { module: 'github.com/prometheus-operator/prometheus-operator', version: 'v0.85.0' };
const serviceMonitorCrd = 'servicemonitors.monitoring.coreos.com';

type Json = Record<string, unknown>;

interface RenderCase {
  chart: ChartName;
  values: 'default' | 'full';
  /** Values files, relative to the chart (the site agent's "default" adds only the two values it cannot default). */
  files: string[];
  apiVersions: string[];
  /** The kinds rendered, sorted, with their counts. */
  kinds: Record<string, number>;
}

const cases: RenderCase[] = [
  {
    chart: 'icn-global',
    values: 'default',
    files: [],
    apiVersions: [],
    kinds: {
      ConfigMap: 1,
      Deployment: 2,
      PersistentVolumeClaim: 1,
      PodDisruptionBudget: 2,
      Service: 2,
      ServiceAccount: 1,
    },
  },
  {
    chart: 'icn-global',
    values: 'full',
    files: ['ci/full-values.yaml'],
    apiVersions: [serviceMonitorApi],
    kinds: {
      ConfigMap: 1,
      Deployment: 2,
      Ingress: 1,
      PersistentVolumeClaim: 1,
      PodDisruptionBudget: 2,
      Secret: 1,
      Service: 2,
      ServiceAccount: 1,
      ServiceMonitor: 2,
    },
  },
  {
    chart: 'icn-site-agent',
    values: 'default',
    files: ['ci/minimal-values.yaml'],
    apiVersions: [],
    kinds: {
      ConfigMap: 2,
      Deployment: 2,
      NetworkPolicy: 1,
      PersistentVolumeClaim: 1,
      PodDisruptionBudget: 1,
      Service: 1,
      ServiceAccount: 1,
    },
  },
  {
    chart: 'icn-site-agent',
    values: 'full',
    files: ['ci/full-values.yaml'],
    apiVersions: [],
    kinds: {
      ConfigMap: 3,
      Deployment: 2,
      NetworkPolicy: 1,
      PersistentVolumeClaim: 1,
      PodDisruptionBudget: 1,
      Secret: 3,
      Service: 1,
      ServiceAccount: 1,
    },
  },
];

let lab: KubernetesLabInfo;
let kube: KubernetesClient;
let transport: KubeTransport;
let helmBinary: string;
let helmHome: string;
let schemas: ManifestSchemas;
let createdCrd = false;
let setUp = false;

// ---- helm ----

const execFileAsync = promisify(execFile);

async function helmRun(args: string[]): Promise<string> {
  try {
    const { stdout } = await execFileAsync(helmBinary, args, {
      env: helmEnv(helmHome),
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    return stdout;
  } catch (err) {
    const stderr = (err as { stderr?: string }).stderr ?? String(err);
    throw new Error(`helm ${args.join(' ')} failed:\n${stderr}`, { cause: err });
  }
}

/** The message of a helm command expected to fail. */
async function helmFailure(args: string[]): Promise<string> {
  try {
    await helmRun(args);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error(`helm ${args.join(' ')} succeeded where it should have failed`);
}

function templateArgs(c: Pick<RenderCase, 'chart' | 'files' | 'apiVersions'>, release = 'r'): string[] {
  return [
    'template',
    release,
    chartDir(c.chart),
    '--namespace',
    namespace,
    '--kube-version',
    lab.versions.kubernetes,
    ...c.files.flatMap((f) => ['--values', join(chartDir(c.chart), f)]),
    ...c.apiVersions.flatMap((a) => ['--api-versions', a]),
  ];
}

function documents(text: string): KubeObject[] {
  return parseAllDocuments(text)
    .map((doc) => doc.toJS() as KubeObject | null)
    .filter((doc): doc is KubeObject => doc !== null);
}

async function render(c: Pick<RenderCase, 'chart' | 'files' | 'apiVersions'>): Promise<KubeObject[]> {
  return documents(await helmRun(templateArgs(c)));
}

/**
 * The object with any fixed node port moved up by 1000 for its dry run. Once, in CI, the install that followed the
 * dry runs was refused the site agent's node port (30891) as "already allocated" though no Service held it; only the
 * dry run had used it (cause not confirmed; the API server repairs such leaks within minutes). The dry run still
 * checks a fixed node port, one the install does not ask for.
 */
function dryRunPorts(object: KubeObject): KubeObject {
  const spec = (object as { spec?: { ports?: { nodePort?: number }[] } }).spec;
  if (object.kind !== 'Service' || !spec?.ports?.some((p) => p.nodePort !== undefined)) return object;
  const ports = spec.ports.map((p) => (p.nodePort === undefined ? p : { ...p, nodePort: p.nodePort + 1000 }));
  return { ...object, spec: { ...spec, ports } };
}

function kindCounts(objects: KubeObject[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of objects) counts[o.kind] = (counts[o.kind] ?? 0) + 1;
  return Object.fromEntries(Object.entries(counts).sort(([a], [b]) => a.localeCompare(b)));
}

// ---- values ----

function isMap(v: unknown): v is Json {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Helm's coalescing of a values file over the chart's values: maps merge, everything else is replaced. */
function mergeValues(base: unknown, over: unknown): unknown {
  if (!isMap(base) || !isMap(over)) return over;
  const out: Json = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = mergeValues(base[k], v);
  return out;
}

function readYaml(path: string): Json {
  return parse(readFileSync(path, 'utf8')) as Json;
}

function chartValues(c: Pick<RenderCase, 'chart' | 'files'>, overrides: Json = {}): Json {
  const defaults = readYaml(join(chartDir(c.chart), 'values.yaml'));
  const merged = c.files.reduce<unknown>((v, f) => mergeValues(v, readYaml(join(chartDir(c.chart), f))), defaults);
  return mergeValues(merged, overrides) as Json;
}

/** values.schema.json compiled by ajv, strict about unknown keywords so that a typo in the schema is caught too. */
function valuesValidator(chart: ChartName): (values: unknown) => string[] {
  const ajv = new Ajv({ allErrors: true, strictKeywords: true });
  const validate = ajv.compile(JSON.parse(readFileSync(join(chartDir(chart), 'values.schema.json'), 'utf8')) as object);
  return (values) => {
    if (validate(values) === true) return [];
    return (validate.errors ?? []).map(describeError);
  };
}

/** ajv's message with its parameters (the property it refused, the type it wanted...). */
function describeError(e: Ajv.ErrorObject): string {
  return `${e.dataPath || '(root)'} ${e.message ?? ''} ${JSON.stringify(e.params)}`;
}

// ---- the API server's OpenAPI schemas ----

interface OpenApiDoc {
  components: { schemas: Record<string, Json> };
}

/**
 * Validates objects against the API server's own OpenAPI v3 schemas (/openapi/v3/<group-version>), with ajv. The
 * schemas leave objects open; here an object schema with declared properties is closed (additionalProperties false)
 * unless it preserves unknown fields, so that a misspelt field fails like the server's strict field validation.
 */
class ManifestSchemas {
  readonly #ajv = new Ajv({ allErrors: true, nullable: true, format: false, validateSchema: false });
  readonly #transport: KubeTransport;
  readonly #groupVersions = new Map<string, Promise<Map<string, string>>>();
  readonly #validators = new Map<string, Ajv.ValidateFunction>();

  constructor(transport: KubeTransport) {
    this.#transport = transport;
  }

  async #load(apiVersion: string): Promise<Map<string, string>> {
    const key = apiVersion.includes('/') ? `apis/${apiVersion}` : `api/${apiVersion}`;
    const deadline = Date.now() + 30_000;
    let url: string | undefined;
    // A CRD's schema reaches /openapi/v3 a moment after the CRD is established.
    while (url === undefined) {
      const index = await this.#transport.request<{ paths: Record<string, { serverRelativeURL: string }> }>({
        method: 'GET',
        path: '/openapi/v3',
        what: 'read the OpenAPI v3 index',
      });
      url = index.paths[key]?.serverRelativeURL;
      if (url === undefined) {
        if (Date.now() > deadline) throw new Error(`the API server publishes no OpenAPI schema for ${apiVersion}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    const [path, query] = url.split('?');
    const doc = await this.#transport.request<OpenApiDoc>({
      method: 'GET',
      path: path!,
      query: Object.fromEntries(new URLSearchParams(query ?? '')),
      what: `read the OpenAPI schema of ${apiVersion}`,
    });
    const id = `https://openapi.lab/${key}`;
    const text = JSON.stringify(doc.components.schemas).replaceAll('"#/components/schemas/', '"#/definitions/');
    const definitions = JSON.parse(text) as Record<string, Json>;
    close(definitions);
    this.#ajv.addSchema({ $id: id, definitions });
    const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
    const kinds = new Map<string, string>();
    for (const [name, schema] of Object.entries(definitions)) {
      const gvks = (schema['x-kubernetes-group-version-kind'] ?? []) as {
        group: string;
        version: string;
        kind: string;
      }[];
      for (const gvk of gvks)
        if (gvk.group === group && gvk.version === version) kinds.set(gvk.kind, `${id}#/definitions/${name}`);
    }
    return kinds;
  }

  /** The schema's complaints about the object; none when it is valid. */
  async check(object: KubeObject): Promise<string[]> {
    const key = `${object.apiVersion}/${object.kind}`;
    let validate = this.#validators.get(key);
    if (validate === undefined) {
      let kinds = this.#groupVersions.get(object.apiVersion);
      if (kinds === undefined) {
        kinds = this.#load(object.apiVersion);
        this.#groupVersions.set(object.apiVersion, kinds);
      }
      const ref = (await kinds).get(object.kind);
      if (ref === undefined) throw new Error(`no OpenAPI schema for ${key}`);
      validate = this.#ajv.compile({ $ref: ref });
      this.#validators.set(key, validate);
    }
    if (validate(object) === true) return [];
    return (validate.errors ?? []).map((e) => `${object.kind} ${object.metadata.name}: ${describeError(e)}`);
  }
}

function close(node: unknown): void {
  if (Array.isArray(node)) {
    for (const item of node) close(item);
    return;
  }
  if (!isMap(node)) return;
  if (
    isMap(node.properties) &&
    node.additionalProperties === undefined &&
    node['x-kubernetes-preserve-unknown-fields'] !== true
  ) {
    node.additionalProperties = false;
  }
  for (const value of Object.values(node)) close(value);
}

// ---- what the lab lacks: the deployment controller and the scheduler ----

interface DeploymentSpec {
  replicas?: number;
  selector: { matchLabels: Record<string, string> };
  template: { metadata: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: Json };
}

/** A Pod of the Deployment's template, as its ReplicaSet would make it (nothing is bound or stored here). */
function podOf(deployment: KubeObject, name: string, extraLabels: Record<string, string> = {}): KubeObject {
  const spec = deployment.spec as DeploymentSpec;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      name,
      namespace: deployment.metadata.namespace ?? namespace,
      labels: { ...spec.template.metadata.labels, ...extraLabels },
      ...(spec.template.metadata.annotations && { annotations: spec.template.metadata.annotations }),
    },
    spec: spec.template.spec,
  };
}

/**
 * The deployment controller's and the scheduler's part for one installed Deployment: a ReplicaSet owned by it, its
 * replicas as Pods owned by the ReplicaSet (admitted by the API server, Pod Security included), each bound to a lab
 * node through the Binding subresource, as the scheduler binds. kwok, playing the nodes' kubelets, runs them.
 */
async function runDeployment(deployment: KubeObject, nodes: string[]): Promise<ObjectRef[]> {
  const spec = deployment.spec as DeploymentSpec;
  const name = deployment.metadata.name;
  const hash = createHash('sha256').update(JSON.stringify(spec.template)).digest('hex').slice(0, 10);
  const labels = { ...spec.template.metadata.labels, 'pod-template-hash': hash };
  const replicaSet = await kube.apply<KubeObject>({
    apiVersion: 'apps/v1',
    kind: 'ReplicaSet',
    metadata: {
      name: `${name}-${hash}`,
      namespace,
      labels: { ...labels, [standInLabel]: 'deployment-controller' },
      ownerReferences: [
        { apiVersion: 'apps/v1', kind: 'Deployment', name, uid: deployment.metadata.uid!, controller: true },
      ],
    },
    spec: {
      replicas: spec.replicas ?? 1,
      selector: { matchLabels: { ...spec.selector.matchLabels, 'pod-template-hash': hash } },
      template: { ...spec.template, metadata: { ...spec.template.metadata, labels } },
    },
  });
  const pods: ObjectRef[] = [];
  for (let i = 0; i < (spec.replicas ?? 1); i++) {
    const pod = podOf(deployment, `${replicaSet.metadata.name}-${i}`, {
      'pod-template-hash': hash,
      [standInLabel]: 'deployment-controller',
    });
    pod.metadata.ownerReferences = [
      {
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        name: replicaSet.metadata.name,
        uid: replicaSet.metadata.uid!,
        controller: true,
      },
    ];
    await kube.apply(pod);
    const node = nodes[pods.length % nodes.length]!;
    await transport.request({
      method: 'POST',
      path: `/api/v1/namespaces/${namespace}/pods/${pod.metadata.name}/binding`,
      body: {
        apiVersion: 'v1',
        kind: 'Binding',
        metadata: { name: pod.metadata.name, namespace },
        target: { apiVersion: 'v1', kind: 'Node', name: node },
      },
      what: `bind pod ${pod.metadata.name} to node ${node}`,
    });
    pods.push(refOf(pod));
  }
  return pods;
}

/** Deletes what the stand-ins made (kwok finishes the pods' deletion, as kubelets would). */
async function removeStandIns(): Promise<void> {
  const selector = { namespace, labelSelector: standInLabel };
  const pods = await kube.list('v1', 'Pod', selector);
  await Promise.all(pods.map((p) => kube.delete(refOf(p), { waitMs: 60_000 })));
  const replicaSets = await kube.list('apps/v1', 'ReplicaSet', selector);
  await Promise.all(replicaSets.map((rs) => kube.delete(refOf(rs), { waitMs: 30_000 })));
}

/** No PVC protection controller runs in the lab: a deleted claim keeps its finalizer until it is taken off here. */
async function releaseClaims(): Promise<void> {
  for (const claim of await kube.list('v1', 'PersistentVolumeClaim', { namespace })) {
    if (claim.metadata.deletionTimestamp === undefined) continue;
    await kube.update(refOf(claim), (c) => ({ ...c, metadata: { ...c.metadata, finalizers: [] } }));
    await kube.waitForGone(refOf(claim), { timeoutMs: 30_000 });
  }
}

// ---- the pods' shape ----

interface Container {
  name: string;
  ports?: { name?: string; containerPort: number }[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  envFrom?: { configMapRef?: { name: string } }[];
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
  securityContext?: Json;
  resources?: { requests?: Record<string, unknown> };
  readinessProbe?: Json;
  livenessProbe?: Json;
  startupProbe?: Json;
}

interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  volumes?: ({ name: string } & Json)[];
  securityContext?: Json;
  automountServiceAccountToken?: boolean;
}

function podSpec(deployment: KubeObject): PodSpec {
  return (deployment.spec as DeploymentSpec).template.spec as unknown as PodSpec;
}

function byName(objects: KubeObject[], kind: string, suffix: string): KubeObject {
  const found = objects.filter((o) => o.kind === kind && o.metadata.name.endsWith(suffix));
  if (found.length !== 1) throw new Error(`expected one ${kind} named *${suffix}, found ${found.length}`);
  return found[0]!;
}

function envOf(container: Container, name: string): NonNullable<Container['env']>[number] | undefined {
  return container.env?.find((e) => e.name === name);
}

// ---- setup ----

beforeAll(async () => {
  await labUp(['kubernetes']);
  lab = labPeer('kubernetes') as KubernetesLabInfo;
  kube = new KubernetesClient(lab.kubeconfig);
  transport = new KubeTransport(lab.kubeconfig);
  schemas = new ManifestSchemas(transport);
  helmBinary = join(ensureGoTool(helm), 'helm');
  helmHome = mkdtempSync(join(tmpdir(), 'icn-charts-test-'));
  setUp = true;
  // Pods here must meet the `restricted` Pod Security Standard: the API server refuses any pod that does not.
  await kube.apply({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: namespace,
      labels: {
        'pod-security.kubernetes.io/enforce': 'restricted',
        'pod-security.kubernetes.io/enforce-version': 'latest',
      },
    },
  });
  // The Prometheus operator's ServiceMonitor CRD, exactly as it ships it, so that the ServiceMonitor is validated and
  // installed for real; removed afterwards if this test added it.
  const crdRef: ObjectRef = {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    name: serviceMonitorCrd,
  };
  if ((await kube.find(crdRef)) === undefined) {
    const dir = goModuleDir(prometheusOperator.module, prometheusOperator.version);
    const [crd] = documents(
      readFileSync(
        join(dir, 'example', 'prometheus-operator-crd', 'monitoring.coreos.com_servicemonitors.yaml'),
        'utf8',
      ),
    );
    await kube.apply(crd!);
    createdCrd = true;
  }
  await kube.waitForCondition(crdRef, 'Established', { timeoutMs: 60_000 });
}, 600_000);

afterAll(async () => {
  // Unset when the lab did not come up: its failure is the beforeAll's.
  if (!setUp) return;
  const report = (what: string) => (err: unknown) => {
    console.error(`${what} cleanup:`, err);
  };
  // After a failure part way, leave nothing of this run behind but its empty namespace.
  const client = new HelmClient({ helmBinary, kubeconfigPath: lab.kubeconfig, homeDir: join(helmHome, 'cleanup') });
  for (const release of ['icn-global', 'edge-1']) await client.uninstall({ release, namespace }).catch(report(release));
  await removeStandIns().catch(report('stand-in'));
  await releaseClaims().catch(report('claim'));
  if (createdCrd) {
    await kube
      .delete({ apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name: serviceMonitorCrd })
      .catch(report('CRD'));
  }
  kube.close();
  transport.dropConnections();
  rmSync(helmHome, { recursive: true, force: true });
}, 300_000);

// ---- the tests ----

describe('helm lint', () => {
  it.each([
    ['icn-global', []],
    ['icn-global', ['ci/full-values.yaml']],
    ['icn-site-agent', []],
    ['icn-site-agent', ['ci/minimal-values.yaml']],
    ['icn-site-agent', ['ci/full-values.yaml']],
  ] as [ChartName, string[]][])('%s with values %j: clean, warnings counted as failures', async (chart, files) => {
    const out = await helmRun([
      'lint',
      '--strict',
      chartDir(chart),
      ...files.flatMap((f) => ['--values', join(chartDir(chart), f)]),
    ]);
    expect(out).toContain('1 chart(s) linted, 0 chart(s) failed');
    expect(out).not.toMatch(/\[(WARNING|ERROR)\]/);
  });
});

describe('values.schema.json', () => {
  it.each(cases.map((c) => [c.chart, c.values, c] as const))(
    '%s %s values pass the schema (ajv)',
    (chart, _name, c) => {
      expect(valuesValidator(chart)(chartValues(c))).toEqual([]);
    },
  );

  it('refuses what is wrong, in ajv and in helm alike', async () => {
    const global = valuesValidator('icn-global');
    const site = valuesValidator('icn-site-agent');
    const base: Pick<RenderCase, 'chart' | 'files'> = { chart: 'icn-global', files: [] };
    const siteBase: Pick<RenderCase, 'chart' | 'files'> = {
      chart: 'icn-site-agent',
      files: ['ci/minimal-values.yaml'],
    };
    const wrong: [ChartName, (v: Json) => string[], Json, string, RegExp][] = [
      ['icn-global', global, chartValues(base, { api: { replicas: -1 } }), 'api.replicas=-1', /replicas/],
      ['icn-global', global, chartValues(base, { api: { replicaz: 2 } }), 'api.replicaz=2', /replicaz/],
      [
        'icn-global',
        global,
        chartValues(base, { temporal: { address: 'no-port' } }),
        'temporal.address=no-port',
        /address/,
      ],
      [
        'icn-global',
        global,
        chartValues(base, { config: { logLevel: 'verbose' } }),
        'config.logLevel=verbose',
        /logLevel/,
      ],
      [
        'icn-global',
        global,
        chartValues(base, { secrets: { create: { codecKeys: 'k1=tooshort' } } }),
        'secrets.create.codecKeys=k1=tooshort',
        /codecKeys/,
      ],
      ['icn-site-agent', site, chartValues(siteBase, { site: 'Edge_1' }), 'site=Edge_1', /site/],
      ['icn-site-agent', site, chartValues(siteBase, { bpa: { port: 70000 } }), 'bpa.port=70000', /port/],
    ];
    for (const [chart, validate, values, set, field] of wrong) {
      expect(validate(values).join('\n')).toMatch(field);
      const files = chart === 'icn-site-agent' ? siteBase.files : [];
      const message = await helmFailure([...templateArgs({ chart, files, apiVersions: [] }), '--set', set]);
      expect(message).toMatch(/values don't meet the specifications of the schema/);
      expect(message).toMatch(field);
    }
  });

  it('the templates refuse what the schema cannot: a site agent without its site or Temporal address', async () => {
    const noSite = await helmFailure(templateArgs({ chart: 'icn-site-agent', files: [], apiVersions: [] }));
    expect(noSite).toMatch(/site is required: the name of the Site resource this agent serves \(ICN_SITE\)/);
    const noAddress = await helmFailure([
      ...templateArgs({ chart: 'icn-site-agent', files: [], apiVersions: [] }),
      '--set',
      'site=edge-1',
    ]);
    expect(noAddress).toMatch(/temporal.address is required/);
    const noDatabase = await helmFailure([
      ...templateArgs({ chart: 'icn-global', files: [], apiVersions: [] }),
      '--set',
      'secrets.existingSecret=',
      '--set',
      'secrets.create.codecKeys=k1=AobpQwjP2bySSTdK1TEexNq83eLxbRi6+VEJ8NIqqac=',
      '--set',
      'secrets.create.secretsKeys=s1=AobpQwjP2bySSTdK1TEexNq83eLxbRi6+VEJ8NIqqac=',
    ]);
    expect(noDatabase).toMatch(/secrets.create.databaseUrl is required/);
  });
});

describe('documentation and image', () => {
  /** The value names a README's tables document; `.x` after `a.b.c` is `a.b.x`, and `a.*` covers all under `a`. */
  function documented(readme: string): string[] {
    const names: string[] = [];
    for (const line of readme.split('\n')) {
      const cell = /^\| (`[^|]+`) *\|/.exec(line)?.[1];
      if (cell === undefined) continue;
      let parent = '';
      for (const [, name] of cell.matchAll(/`([^`]+)`/g)) {
        if (name!.startsWith('.')) {
          names.push(parent + name!);
        } else {
          names.push(name!);
          parent = name!.includes('.') ? name!.slice(0, name!.lastIndexOf('.')) : '';
        }
      }
    }
    return names;
  }

  function leaves(values: unknown, prefix = ''): string[] {
    if (!isMap(values) || Object.keys(values).length === 0) return [prefix];
    return Object.entries(values).flatMap(([k, v]) => leaves(v, prefix === '' ? k : `${prefix}.${k}`));
  }

  it.each(['icn-global', 'icn-site-agent'] as ChartName[])('%s: README.md documents every value', (chart) => {
    const names = documented(readFileSync(join(chartDir(chart), 'README.md'), 'utf8'));
    const missing = leaves(readYaml(join(chartDir(chart), 'values.yaml'))).filter(
      (path) =>
        !names.some(
          (n) => n === path || path.startsWith(`${n}.`) || (n.endsWith('.*') && path.startsWith(n.slice(0, -1))),
        ),
    );
    expect(missing).toEqual([]);
  });

  it('deploy/image/Dockerfile: the Node and helm the project pins, the sources every chart starts', async () => {
    const dockerfile = readFileSync(join(import.meta.dirname, '..', '..', 'deploy', 'image', 'Dockerfile'), 'utf8');
    const pkg = JSON.parse(readFileSync(join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as {
      devDependencies: Record<string, string>;
    };
    expect(dockerfile).toContain(`ARG NODE_VERSION=${pkg.devDependencies.node!}`);
    expect(dockerfile).toContain(`ARG HELM_VERSION=${helm.version}`);
    expect(dockerfile).toMatch(/^COPY src \.\/src$/m);
    // The SDK patch (patches/) is applied by npm ci's postinstall in the image too, and the context carries it.
    expect(dockerfile).toMatch(/^COPY patches \.\/patches$/m);
    const ignore = readFileSync(
      join(import.meta.dirname, '..', '..', 'deploy', 'image', 'Dockerfile.dockerignore'),
      'utf8',
    );
    expect(ignore).toMatch(/^!patches\/$/m);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node"\]$/m);
    const entryPoints = new Set<string>();
    for (const c of cases) {
      for (const d of (await render(c)).filter((o) => o.kind === 'Deployment')) {
        for (const container of podSpec(d).containers) {
          const args = (container as { args?: string[] }).args ?? [];
          entryPoints.add(args.find((a) => a.endsWith('.ts'))!);
        }
      }
    }
    expect([...entryPoints].sort()).toEqual([
      'src/api/main.ts',
      'src/bpa/main.ts',
      'src/worker/main.ts',
      'src/worker/site-agent-main.ts',
    ]);
    for (const entry of entryPoints) expect(existsSync(join(import.meta.dirname, '..', '..', entry))).toBe(true);
  });
});

describe('helm template: every object accepted by the lab API server (dry run) and by its OpenAPI schema (ajv)', () => {
  it.each(cases.map((c) => [c.chart, c.values, c] as const))(
    '%s with %s values',
    async (_chart, _name, c) => {
      const objects = await render(c);
      expect(kindCounts(objects)).toEqual(c.kinds);
      for (const object of objects) {
        // Namespaced objects name their namespace, so that `helm template | kubectl apply` lands them right.
        if (!['Namespace', 'CustomResourceDefinition'].includes(object.kind)) {
          expect(object.metadata.namespace).toBe(namespace);
        }
        expect(await schemas.check(object)).toEqual([]);
        const admitted = await kube.apply(dryRunPorts(object), { dryRun: true });
        expect(admitted).toMatchObject({ kind: object.kind, metadata: { name: object.metadata.name } });
        // A dry run stores nothing.
        expect(await kube.find(refOf(object))).toBeUndefined();
        if (object.kind === 'Deployment') {
          // The pods the Deployment would make pass admission, the `restricted` Pod Security Standard included.
          const pod = podOf(object, `${object.metadata.name}-dry-run`);
          expect(await schemas.check(pod)).toEqual([]);
          const admittedPod = await kube.apply(pod, { dryRun: true });
          expect(admittedPod.metadata.name).toBe(pod.metadata.name);
        }
      }
    },
    120_000,
  );

  it('the validators are not blind: a misspelt field, a wrong type and a root-capable pod are refused', async () => {
    const [deployment] = (await render(cases[0]!)).filter((o) => o.kind === 'Deployment');
    const misspelt = structuredClone(deployment!);
    (podSpec(misspelt).containers[0] as unknown as Json).imagePullPolicyy = 'Always';
    expect((await schemas.check(misspelt)).join('\n')).toMatch(/additional properties/);
    await expect(kube.apply(misspelt, { dryRun: true })).rejects.toThrow(/imagePullPolicyy/);

    const wrongType = structuredClone(deployment!);
    (wrongType.spec as Json).replicas = 'two';
    expect((await schemas.check(wrongType)).join('\n')).toMatch(/replicas/);
    await expect(kube.apply(wrongType, { dryRun: true })).rejects.toThrow(/replicas/);

    const root = podOf(deployment!, 'root-capable');
    const spec = root.spec as PodSpec;
    spec.securityContext = { ...spec.securityContext, runAsNonRoot: false, runAsUser: 0 };
    await expect(kube.apply(root, { dryRun: true })).rejects.toThrow(/violates PodSecurity "restricted/);
  });

  it('icn-global: secrets only in Secrets, the ServiceMonitor only where its API is served', async () => {
    const full = cases[1]!;
    const objects = await render(full);
    const values = chartValues(full) as { secrets: { create: Record<string, string> } };
    const secretStrings = Object.values(values.secrets.create).filter((s) => s !== '');
    const config = byName(objects, 'ConfigMap', '-config');
    for (const s of secretStrings) expect(JSON.stringify(config)).not.toContain(s);
    for (const deployment of objects.filter((o) => o.kind === 'Deployment')) {
      const text = JSON.stringify(deployment);
      for (const s of secretStrings) expect(text).not.toContain(s);
      const [container] = podSpec(deployment).containers;
      // DATABASE_URL from the PostgreSQL operator's Secret; the keys from the chart's own.
      expect(envOf(container!, 'DATABASE_URL')?.valueFrom?.secretKeyRef).toEqual({
        name: 'icn-postgres-app',
        key: 'uri',
      });
      expect(envOf(container!, 'ICN_CODEC_KEYS')?.valueFrom?.secretKeyRef?.name).toBe('icn-secrets');
    }
    const secret = byName(objects, 'Secret', '-secrets') as KubeObject & { data: Record<string, string> };
    expect(Object.keys(secret.data).sort()).toEqual(['ICN_API_TOKENS', 'ICN_CODEC_KEYS', 'ICN_SECRETS_KEYS']);

    // Without the CRD's API (as helm sees a cluster without the Prometheus operator) there is no ServiceMonitor.
    const withoutCrd = await render({ ...full, apiVersions: [] });
    expect(withoutCrd.filter((o) => o.kind === 'ServiceMonitor')).toEqual([]);
    // With the chart's defaults nothing secret is rendered at all: the pods read the operator's Secret.
    const defaults = await render(cases[0]!);
    expect(defaults.filter((o) => o.kind === 'Secret')).toEqual([]);
    const api = podSpec(byName(defaults, 'Deployment', '-api')).containers[0]!;
    expect(envOf(api, 'ICN_API_TOKENS')?.valueFrom?.secretKeyRef).toMatchObject({
      name: 'icn-global-secrets',
      optional: true,
    });
  });
});

describe('helm install into the lab API server', () => {
  const releases = [
    { release: 'icn-global', chart: 'icn-global' as ChartName, c: cases[1]! },
    { release: 'edge-1', chart: 'icn-site-agent' as ChartName, c: cases[3]! },
  ];
  const installed = new Map<string, KubeObject[]>();

  it('installs both charts with every feature on: every object accepted and stored', async () => {
    const client = new HelmClient({ helmBinary, kubeconfigPath: lab.kubeconfig, homeDir: join(helmHome, 'install') });
    for (const { release, chart, c } of releases) {
      const status = await client.installOrUpgrade({
        release,
        namespace,
        chart: chartDir(chart),
        values: c.files.reduce<Json>((v, f) => mergeValues(v, readYaml(join(chartDir(chart), f))) as Json, {}),
        timeoutSeconds: 120,
      });
      expect(status).toMatchObject({ name: release, namespace, status: 'deployed', revision: 1, chartName: chart });
      const manifest = documents(
        await helmRun(['get', 'manifest', release, '--namespace', namespace, '--kubeconfig', lab.kubeconfig]),
      );
      // helm saw the ServiceMonitor API of the live server through .Capabilities, as `template` did with --api-versions.
      expect(kindCounts(manifest)).toEqual(c.kinds);
      for (const object of manifest) {
        const stored = await kube.get(refOf(object));
        expect(stored.metadata.annotations?.['meta.helm.sh/release-name']).toBe(release);
        expect(stored.metadata.labels?.['app.kubernetes.io/managed-by']).toBe('Helm');
      }
      installed.set(release, manifest);
    }
    // The API server allocated what it allocates: cluster IPs, the BPA's fixed node port; the worker's is headless.
    const global = installed.get('icn-global')!;
    const api = await kube.get<KubeObject & { spec: { clusterIP: string } }>(refOf(byName(global, 'Service', '-api')));
    expect(api.spec.clusterIP).toMatch(/^10\.96\./);
    const worker = await kube.get<KubeObject & { spec: { clusterIP: string } }>(
      refOf(byName(global, 'Service', '-worker')),
    );
    expect(worker.spec.clusterIP).toBe('None');
    const bpa = await kube.get<KubeObject & { spec: { ports: { nodePort?: number }[] } }>(
      refOf(byName(installed.get('edge-1')!, 'Service', '-bpa')),
    );
    expect(bpa.spec.ports[0]!.nodePort).toBe(30891);
  }, 300_000);

  it("runs every Deployment's pods (stand-in controllers bind them, kwok runs them): non-root, read-only root, /tmp writable", async () => {
    expect(installed.size).toBe(2);
    const expected: Record<string, number> = { '-api': 3, '-worker': 3, '-agent': 2, '-bpa': 1 };
    const started = Date.now();
    const pods: ObjectRef[] = [];
    for (const manifest of installed.values()) {
      for (const d of manifest.filter((o) => o.kind === 'Deployment')) {
        const deployment = await kube.get(refOf(d));
        const suffix = Object.keys(expected).find((s) => deployment.metadata.name.endsWith(s))!;
        expect((deployment.spec as DeploymentSpec).replicas).toBe(expected[suffix]);
        const spec = podSpec(deployment);
        for (const container of [...spec.containers, ...(spec.initContainers ?? [])]) {
          expect(container.securityContext).toMatchObject({
            readOnlyRootFilesystem: true,
            allowPrivilegeEscalation: false,
            capabilities: { drop: ['ALL'] },
          });
          expect(container.resources?.requests).toBeDefined();
        }
        expect(spec.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
        expect(spec.automountServiceAccountToken).toBe(false);
        const tmp = spec.volumes?.find((v) => v.name === 'tmp');
        expect(tmp?.emptyDir).toBeDefined();
        for (const container of spec.containers) {
          expect(container.volumeMounts).toContainEqual({ name: 'tmp', mountPath: '/tmp' });
        }
        pods.push(...(await runDeployment(deployment, lab.nodes)));
      }
    }
    expect(pods).toHaveLength(9);
    for (const ref of pods) {
      const pod = await kube.waitFor(
        ref,
        (p) =>
          (p?.status as { phase?: string } | undefined)?.phase === 'Running' &&
          findCondition(p, 'Ready')?.status === 'True',
        { timeoutMs: 90_000, description: 'Running and Ready through kwok' },
      );
      expect((pod?.spec as { nodeName?: string }).nodeName).toMatch(/^lab-node-/);
    }
    console.log(`${pods.length} pods of 4 Deployments Running through kwok in ${Date.now() - started} ms`);
  }, 300_000);

  it('gives each process what it reads: probes on the health endpoints, named ports, the BPA its keys and data', () => {
    const global = installed.get('icn-global')!;
    const api = podSpec(byName(global, 'Deployment', '-api')).containers[0]!;
    expect(api.ports).toEqual([{ name: 'http', containerPort: 8090, protocol: 'TCP' }]);
    expect(api.readinessProbe).toMatchObject({ httpGet: { path: '/readyz', port: 'http' } });
    expect(api.livenessProbe).toMatchObject({ httpGet: { path: '/livez', port: 'http' } });
    const worker = podSpec(byName(global, 'Deployment', '-worker')).containers[0]!;
    expect(worker.ports).toEqual([
      { name: 'health', containerPort: 8092, protocol: 'TCP' },
      { name: 'metrics', containerPort: 9464, protocol: 'TCP' },
    ]);
    expect(envOf(worker, 'ICN_WORKER_HEALTH_PORT')?.value).toBe('8092');
    expect(worker.readinessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 'health' } });
    expect(worker.livenessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 'health' } });
    expect(envOf(worker, 'ICN_WORKER_METRICS_PORT')?.value).toBe('9464');
    expect(envOf(worker, 'ICN_WORKER_MAX_CONCURRENT_ACTIVITY_TASK_EXECUTIONS')?.value).toBe('4000');
    // A ratio stays a fraction (the counts are printed as integers).
    expect(envOf(worker, 'ICN_WORKER_NON_STICKY_TO_STICKY_POLL_RATIO')?.value).toBe('0.5');
    expect(envOf(worker, 'ICN_API_TOKENS')).toBeUndefined();
    const monitors = global.filter((o) => o.kind === 'ServiceMonitor');
    expect(monitors.map((m) => (m.spec as { endpoints: { port: string }[] }).endpoints[0]!.port).sort()).toEqual([
      'http',
      'metrics',
    ]);

    const site = installed.get('edge-1')!;
    const agent = podSpec(byName(site, 'Deployment', '-agent')).containers[0]!;
    expect(agent.ports?.map((p) => p.name)).toEqual(['metrics']);
    // No Service selects the agent: it takes no connections.
    const services = site.filter((o) => o.kind === 'Service');
    expect(
      services.map((s) => (s.spec as { selector: Record<string, string> }).selector['app.kubernetes.io/component']),
    ).toEqual(['bpa']);
    const agentConfig = byName(site, 'ConfigMap', '-agent-config') as KubeObject & { data: Record<string, string> };
    expect(agentConfig.data).toMatchObject({
      ICN_SITE: 'edge-1',
      TEMPORAL_ADDRESS: 'temporal.example.com:7233',
      TEMPORAL_TLS: 'true',
    });

    const bpaDeployment = byName(site, 'Deployment', '-bpa');
    expect((bpaDeployment.spec as { strategy: { type: string } }).strategy.type).toBe('Recreate');
    const bpaSpec = podSpec(bpaDeployment);
    const bpa = bpaSpec.containers[0]!;
    const bpaConfig = byName(site, 'ConfigMap', '-bpa-config') as KubeObject & { data: Record<string, string> };
    const secretsDir = bpaConfig.data.ICN_BPA_SECRETS_DIR!;
    expect(bpa.volumeMounts).toContainEqual({ name: 'ssh-keys', mountPath: secretsDir });
    expect(bpa.volumeMounts).toContainEqual({ name: 'data', mountPath: bpaConfig.data.ICN_BPA_DATA_DIR });
    expect(bpaSpec.volumes?.find((v) => v.name === 'data')).toMatchObject({
      persistentVolumeClaim: { claimName: byName(site, 'PersistentVolumeClaim', '-bpa-data').metadata.name },
    });
    // The keys are copied from the Secrets into the BPA's writable folder, as <name>/privateKey.
    const copy = bpaSpec.initContainers?.[0];
    expect(copy?.volumeMounts).toContainEqual({ name: 'ssh-keys', mountPath: secretsDir });
    const source = bpaSpec.volumes?.find((v) => v.name === 'ssh-keys-source') as
      { projected: { sources: { secret: { items: { path: string }[] } }[] } } | undefined;
    expect(source?.projected.sources.flatMap((s) => s.secret.items.map((i) => i.path)).sort()).toEqual([
      'chart-test/privateKey',
      'site-hosts/passphrase',
      'site-hosts/privateKey',
    ]);
    expect(envOf(bpa, 'ICN_BPA_TOKENS')?.valueFrom?.secretKeyRef?.name).toBe('edge-1-site-bpa-tokens');
    expect(bpa.readinessProbe).toMatchObject({ httpGet: { path: '/healthz', port: 'http' } });
  });

  it('uninstalls both: every object of the releases gone', async () => {
    expect(installed.size).toBe(2);
    const client = new HelmClient({ helmBinary, kubeconfigPath: lab.kubeconfig, homeDir: join(helmHome, 'uninstall') });
    for (const release of installed.keys()) {
      expect(await client.uninstall({ release, namespace, timeoutSeconds: 120 })).toEqual({ existed: true });
    }
    await removeStandIns();
    await releaseClaims();
    for (const object of [...installed.values()].flat()) {
      const left = await kube.find(refOf(object));
      expect(left).toBeUndefined();
    }
    expect(await kube.list('v1', 'Pod', { namespace })).toEqual([]);
  }, 300_000);
});
