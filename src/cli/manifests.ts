import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import { apiVersion } from '../domain/meta.ts';
import { Secret } from '../domain/secret.ts';
import { type HostSpec, Site } from '../domain/site.ts';
import { SoftwareProfile } from '../domain/software-profile.ts';

/** Where a document came from, so that every complaint names the file an operator has to open. */
export interface Source {
  file: string;
  /** 0-based index of the document in a multi-document file. */
  document: number;
}

export interface InputIssue {
  where: string;
  field: string;
  message: string;
}

/** Bad input found before anything is sent: icnctl prints each `field: message` and exits 2. */
export class InputError extends Error {
  override name = 'InputError';
  readonly issues: InputIssue[];
  constructor(issues: InputIssue[]) {
    super(issues.map((i) => `${i.where}: ${i.field ? `${i.field}: ` : ''}${i.message}`).join('\n'));
    this.issues = issues;
  }
}

export interface Manifest<T> {
  source: Source;
  object: T;
}

/** What one `apply` sends, already validated with the API's own schemas, in the order it is sent. */
export interface ApplySet {
  secrets: Manifest<Secret>[];
  profiles: Manifest<SoftwareProfile>[];
  sites: Manifest<Site>[];
}

/** The label (or annotation) on a BareMetalHost that names the Site it belongs to. */
export const siteLabel = 'icn.akraino.org/site';
/** BareMetalHost annotations icnctl reads; metal3 itself ignores them. */
export const hostAnnotations = {
  role: 'icn.akraino.org/role',
  sshAddress: 'icn.akraino.org/ssh-address',
  sshPort: 'icn.akraino.org/ssh-port',
  sshUser: 'icn.akraino.org/ssh-user',
  /** On a BareMetalHost or on its Site: the ssh-key Secret the BPA logs in with. */
  sshKeySecret: 'icn.akraino.org/ssh-key-secret',
} as const;

const describeSource = (s: Source) => (s.document === 0 ? s.file : `${s.file} (document ${s.document + 1})`);

/** A zod path as the API prints it: `spec.hosts.1.bootMacAddress`. */
export const fieldOf = (path: readonly PropertyKey[]) => path.map(String).join('.');

/** Files named by `-f`: a file as is, a folder recursively (YAML and JSON files only), in a stable order. */
export function manifestFiles(paths: string[]): string[] {
  const files: string[] = [];
  const walk = (path: string, named: boolean) => {
    let isDir: boolean;
    try {
      isDir = statSync(path).isDirectory();
    } catch {
      throw new InputError([{ where: path, field: '', message: 'no such file or folder' }]);
    }
    if (isDir) {
      for (const entry of readdirSync(path).sort()) {
        if (!entry.startsWith('.')) walk(join(path, entry), false);
      }
    } else if (named || ['.yaml', '.yml', '.json'].includes(extname(path))) {
      files.push(path);
    }
  };
  for (const path of paths) walk(path, true);
  return files;
}

/** Every document of every file, as plain data; YAML syntax errors name the file and line. */
export function readDocuments(files: string[]): Manifest<unknown>[] {
  const docs: Manifest<unknown>[] = [];
  const issues: InputIssue[] = [];
  for (const file of files) {
    const text = readFileSync(file, 'utf8');
    parseAllDocuments(text).forEach((doc, document) => {
      const source = { file, document };
      if (doc.errors.length > 0) {
        for (const e of doc.errors) {
          const line = e.linePos?.[0].line;
          issues.push({
            where: describeSource(source),
            field: '',
            message: `YAML ${line !== undefined ? `line ${line}: ` : ''}${e.message.split('\n')[0] ?? ''}`,
          });
        }
        return;
      }
      const object: unknown = doc.toJS();
      // An empty document (a trailing `---`, a file of comments) is no object.
      if (object !== null && object !== undefined) docs.push({ source, object });
    });
  }
  if (issues.length > 0) throw new InputError(issues);
  return docs;
}

// metal3's BareMetalHost carries much that icn does not use (online, image, userData, ...): only these fields matter.
const BareMetalHost = z.object({
  apiVersion: z.literal('metal3.io/v1alpha1'),
  kind: z.literal('BareMetalHost'),
  metadata: z.object({
    name: z.string(),
    labels: z.record(z.string(), z.string()).optional(),
    annotations: z.record(z.string(), z.string()).optional(),
  }),
  spec: z.object({
    bootMACAddress: z.string(),
    bmc: z.object({
      address: z.string(),
      credentialsName: z.string(),
      disableCertificateVerification: z.boolean().optional(),
    }),
    rootDeviceHints: z.record(z.string(), z.unknown()).optional(),
  }),
});
type BareMetalHost = z.infer<typeof BareMetalHost>;

const supportedHints = ['deviceName', 'serialNumber', 'minSizeGigabytes', 'rotational'];

const base64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'must be base64');
// A Kubernetes Secret as metal3 expects the BMC credentials: Opaque, username and password in `data`.
const KubeSecret = z.object({
  apiVersion: z.literal('v1'),
  kind: z.literal('Secret'),
  metadata: z.object({ name: z.string(), labels: z.record(z.string(), z.string()).optional() }),
  type: z.enum(['Opaque', 'kubernetes.io/basic-auth']).default('Opaque'),
  data: z.record(z.string(), base64).optional(),
  stringData: z.record(z.string(), z.string()).optional(),
});
type KubeSecret = z.infer<typeof KubeSecret>;

function issuesOf(error: z.ZodError, source: Source): InputIssue[] {
  return error.issues.map((i) => ({ where: describeSource(source), field: fieldOf(i.path), message: i.message }));
}

const canonicalKinds = `${apiVersion} Site, SoftwareProfile or Secret; metal3.io/v1alpha1 BareMetalHost; v1 Secret`;

/**
 * Sorts documents into what the API takes, turning BareMetalHosts into hosts of the Site they name and their v1
 * credential Secrets into bmc-credentials Secrets, and validates everything before anything is sent: one bad
 * document refuses the whole apply, so an apply is never half done because of a typo.
 */
export function buildApplySet(docs: Manifest<unknown>[]): ApplySet {
  const issues: InputIssue[] = [];
  const rawSites: Manifest<Record<string, unknown>>[] = [];
  const profiles: Manifest<SoftwareProfile>[] = [];
  const secrets: Manifest<Secret>[] = [];
  const hosts: Manifest<BareMetalHost>[] = [];
  const kubeSecrets: Manifest<KubeSecret>[] = [];

  for (const { source, object } of docs) {
    const where = describeSource(source);
    if (typeof object !== 'object' || object === null || Array.isArray(object)) {
      issues.push({ where, field: '', message: 'is not an object' });
      continue;
    }
    const doc = object as Record<string, unknown>;
    const kind = `${String(doc.apiVersion)} ${String(doc.kind)}`;
    const parse = <S extends z.ZodType>(schema: S): z.infer<S> | undefined => {
      const parsed = schema.safeParse(doc);
      if (parsed.success) return parsed.data;
      issues.push(...issuesOf(parsed.error, source));
      return undefined;
    };
    if (kind === `${apiVersion} Site`) {
      // Validated once its BareMetalHosts have joined it.
      rawSites.push({ source, object: doc });
    } else if (kind === `${apiVersion} SoftwareProfile`) {
      const p = parse(SoftwareProfile);
      if (p) profiles.push({ source, object: p });
    } else if (kind === `${apiVersion} Secret`) {
      const s = parse(Secret);
      if (s) secrets.push({ source, object: s });
    } else if (kind === 'metal3.io/v1alpha1 BareMetalHost') {
      const h = parse(BareMetalHost);
      if (h) hosts.push({ source, object: h });
    } else if (kind === 'v1 Secret') {
      const s = parse(KubeSecret);
      if (s) kubeSecrets.push({ source, object: s });
    } else if (kind === `${apiVersion} Artifact`) {
      issues.push({ where, field: 'kind', message: 'artifacts are uploaded with `icnctl upload`, not applied' });
    } else {
      issues.push({ where, field: 'kind', message: `${kind} cannot be applied; expected ${canonicalKinds}` });
    }
  }

  // v1 Secrets become bmc-credentials Secrets, but only those a BareMetalHost of this apply names.
  const credentialUsers = new Set(hosts.map((h) => h.object.spec.bmc.credentialsName));
  for (const { source, object } of kubeSecrets) {
    const where = describeSource(source);
    if (!credentialUsers.has(object.metadata.name)) {
      issues.push({
        where,
        field: 'metadata.name',
        message: `v1 Secret "${object.metadata.name}" is no BareMetalHost's spec.bmc.credentialsName in this apply; write other secrets as ${apiVersion} Secrets`,
      });
      continue;
    }
    const stringData: Record<string, string> = { ...object.stringData };
    for (const [key, value] of Object.entries(object.data ?? {})) {
      stringData[key] = Buffer.from(value, 'base64').toString('utf8');
    }
    const converted = Secret.safeParse({
      apiVersion,
      kind: 'Secret',
      metadata: { name: object.metadata.name, ...(object.metadata.labels && { labels: object.metadata.labels }) },
      type: 'bmc-credentials',
      stringData,
    });
    if (converted.success) secrets.push({ source, object: converted.data });
    else {
      // Field paths of the icn Secret map onto `data` of the v1 Secret; values are never echoed.
      issues.push(
        ...converted.error.issues.map((i) => ({
          where,
          field: fieldOf(i.path).replace(/^stringData\./, 'data.'),
          message: i.message,
        })),
      );
    }
  }

  const sites = joinHosts(rawSites, hosts, issues);

  const duplicates = (list: Manifest<{ metadata: { name: string } }>[], kind: string, key = (n: string) => n) => {
    const seen = new Map<string, Source>();
    for (const { source, object } of list) {
      const k = key(object.metadata.name);
      const first = seen.get(k);
      if (first) {
        issues.push({
          where: describeSource(source),
          field: 'metadata.name',
          message: `${kind} "${k}" is also defined in ${describeSource(first)}`,
        });
      } else seen.set(k, source);
    }
  };
  duplicates(secrets, 'Secret');
  duplicates(sites, 'Site');
  const profileKeys = new Map<string, Source>();
  for (const { source, object } of profiles) {
    const k = `${object.metadata.name}@${object.spec.version}`;
    const first = profileKeys.get(k);
    if (first) {
      issues.push({
        where: describeSource(source),
        field: 'metadata.name',
        message: `SoftwareProfile ${k} is also defined in ${describeSource(first)}`,
      });
    } else profileKeys.set(k, source);
  }

  if (issues.length > 0) throw new InputError(issues);
  return { secrets, profiles, sites };
}

function joinHosts(
  rawSites: Manifest<Record<string, unknown>>[],
  hosts: Manifest<BareMetalHost>[],
  issues: InputIssue[],
): Manifest<Site>[] {
  const byName = new Map<string, { raw: Manifest<Record<string, unknown>>; added: Manifest<HostSpec>[] }>();
  for (const raw of rawSites) {
    const name = (raw.object.metadata as { name?: unknown } | undefined)?.name;
    if (typeof name === 'string') byName.set(name, { raw, added: [] });
  }

  for (const { source, object: bmh } of hosts) {
    const where = describeSource(source);
    const labels = bmh.metadata.labels ?? {};
    const annotations = bmh.metadata.annotations ?? {};
    const siteName = labels[siteLabel] ?? annotations[siteLabel];
    if (siteName === undefined) {
      issues.push({
        where,
        field: `metadata.labels.${siteLabel}`,
        message: 'is required: it names the Site of the host',
      });
      continue;
    }
    const site = byName.get(siteName);
    if (!site) {
      issues.push({
        where,
        field: `metadata.labels.${siteLabel}`,
        message: `Site "${siteName}" is not in this apply; apply the BareMetalHost together with its Site`,
      });
      continue;
    }
    const hints = bmh.spec.rootDeviceHints ?? {};
    const unsupported = Object.keys(hints).filter((k) => !supportedHints.includes(k));
    if (unsupported.length > 0) {
      issues.push({
        where,
        field: `spec.rootDeviceHints.${unsupported[0] ?? ''}`,
        message: `is not supported; icn takes ${supportedHints.join(', ')}`,
      });
      continue;
    }
    const siteMeta = site.raw.object.metadata as { annotations?: Record<string, string> } | undefined;
    const declared = (site.raw.object.spec as { hosts?: { ssh?: { keyRef?: { name?: string } } }[] } | undefined)
      ?.hosts;
    const keySecret =
      annotations[hostAnnotations.sshKeySecret] ??
      siteMeta?.annotations?.[hostAnnotations.sshKeySecret] ??
      declared?.find((h) => h.ssh?.keyRef?.name !== undefined)?.ssh?.keyRef?.name;
    if (keySecret === undefined) {
      issues.push({
        where,
        field: `metadata.annotations.${hostAnnotations.sshKeySecret}`,
        message: `no SSH key secret: annotate the BareMetalHost or Site "${siteName}" with it`,
      });
      continue;
    }
    const port = annotations[hostAnnotations.sshPort];
    site.added.push({
      source,
      object: {
        name: bmh.metadata.name,
        role: (annotations[hostAnnotations.role] ?? 'worker') as HostSpec['role'],
        bmc: {
          address: bmh.spec.bmc.address,
          credentialsRef: { name: bmh.spec.bmc.credentialsName },
          disableCertificateVerification: bmh.spec.bmc.disableCertificateVerification ?? false,
        },
        bootMacAddress: bmh.spec.bootMACAddress,
        ...(Object.keys(hints).length > 0 && { rootDeviceHints: hints }),
        ssh: {
          // Without an address the host name is the SSH target, resolved by the DNS of the site.
          address: annotations[hostAnnotations.sshAddress] ?? bmh.metadata.name,
          // A malformed port stays a string so that validation names it instead of guessing.
          port: port !== undefined && /^\d+$/.test(port) ? Number(port) : (port ?? 22),
          user: annotations[hostAnnotations.sshUser] ?? 'root',
          keyRef: { name: keySecret },
        },
      } as HostSpec,
    });
  }

  const sites: Manifest<Site>[] = [];
  for (const raw of rawSites) {
    const name = (raw.object.metadata as { name?: unknown } | undefined)?.name;
    const added = typeof name === 'string' ? (byName.get(name)?.added ?? []) : [];
    let doc = raw.object;
    const spec = doc.spec as { hosts?: unknown[] } | undefined;
    const ownHosts = Array.isArray(spec?.hosts) ? spec.hosts.length : 0;
    if (added.length > 0 && typeof spec === 'object') {
      doc = {
        ...doc,
        spec: { ...spec, hosts: [...(Array.isArray(spec.hosts) ? spec.hosts : []), ...added.map((a) => a.object)] },
      };
    }
    const parsed = Site.safeParse(doc);
    if (parsed.success) {
      sites.push({ source: raw.source, object: parsed.data });
      continue;
    }
    for (const issue of parsed.error.issues) {
      const [top, list, index] = issue.path;
      const fromHost =
        top === 'spec' && list === 'hosts' && typeof index === 'number' && index >= ownHosts
          ? added[index - ownHosts]
          : undefined;
      issues.push({
        where: describeSource(fromHost?.source ?? raw.source),
        field: fromHost ? `${fieldOf(issue.path)} (BareMetalHost ${fromHost.object.name})` : fieldOf(issue.path),
        message: issue.message,
      });
    }
  }
  return sites;
}
