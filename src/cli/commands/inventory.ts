import { createHash } from 'node:crypto';
import { createReadStream, statSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { isDeepStrictEqual } from 'node:util';
import type { ArtifactSpec } from '../../domain/artifact.ts';
import type { Secret, SecretSummary } from '../../domain/secret.ts';
import type { Site, SiteSpec, SiteStatus } from '../../domain/site.ts';
import type { SoftwareProfile } from '../../domain/software-profile.ts';
import { ApiError, type ApiClient } from '../api-client.ts';
import { buildApplySet, InputError, manifestFiles, readDocuments } from '../manifests.ts';
import { age, bytes, labelsText, type OutputFormat, printData, printTable } from '../output.ts';

/** A site as the API returns it: the stored document with server-filled metadata. */
export interface SiteOut {
  apiVersion: string;
  kind: 'Site';
  metadata: {
    name: string;
    uid: string;
    resourceVersion: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
    creationTimestamp: string;
  };
  spec: SiteSpec;
  status?: SiteStatus;
}
interface ProfileOut {
  apiVersion: string;
  kind: 'SoftwareProfile';
  metadata: { name: string; resourceVersion: string; labels: Record<string, string>; creationTimestamp: string };
  spec: SoftwareProfile['spec'];
}
type ArtifactOut = ArtifactSpec & { createdAt: string };

/** Exit code for an API failure: 2 for input the API refused, 3 when the API is unreachable or refuses the caller. */
export function exitCodeOf(err: ApiError): number {
  const s = err.status;
  return s !== undefined && s >= 400 && s < 500 && s !== 401 && s !== 403 ? 2 : 3;
}

const isNotFound = (err: unknown) => err instanceof ApiError && err.status === 404;
const enc = encodeURIComponent;

// ---------------------------------------------------------------------------------------------------------------- apply

/** Everything canonical about a site that an apply may change; key order does not matter to the comparison. */
function sameSite(wanted: Site, stored: SiteOut): boolean {
  return (
    isDeepStrictEqual(JSON.parse(JSON.stringify(wanted.spec)), stored.spec) &&
    isDeepStrictEqual(wanted.metadata.labels ?? {}, stored.metadata.labels) &&
    isDeepStrictEqual(wanted.metadata.annotations ?? {}, stored.metadata.annotations)
  );
}

/**
 * Validates every document first (nothing is sent if one is bad), then sends Secrets, Profiles and Sites in that
 * order so that what a site references exists before it. A refusal of one object is reported and the rest go on;
 * the exit code is that of the first refusal.
 */
export async function apply(api: ApiClient, paths: string[]): Promise<number> {
  const set = buildApplySet(readDocuments(manifestFiles(paths)));
  let exitCode = 0;
  const attempt = async (what: string, send: () => Promise<string>) => {
    try {
      console.log(`${what} ${await send()}`);
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      console.error(`error: ${what}: ${err.message}`);
      if (exitCode === 0) exitCode = exitCodeOf(err);
    }
  };

  for (const { object } of set.secrets) {
    const name = object.metadata.name;
    await attempt(`secret/${name}`, async () => {
      const existed = await api.get(`/v1/secrets/${enc(name)}`).then(
        () => true,
        (err: unknown) => {
          if (isNotFound(err)) return false;
          throw err;
        },
      );
      // Values are write-only, so a secret that exists is rewritten: it cannot be compared.
      await api.put<SecretSummary>(`/v1/secrets/${enc(name)}`, secretBody(object));
      return existed ? 'configured' : 'created';
    });
  }

  for (const { object } of set.profiles) {
    await attempt(`profile/${object.metadata.name}@${object.spec.version}`, async () => {
      const { status } = await api.request<ProfileOut>('POST', '/v1/profiles', object);
      return status === 201 ? 'created' : 'unchanged';
    });
  }

  for (const { object } of set.sites) {
    const name = object.metadata.name;
    await attempt(`site/${name}`, async () => {
      const stored = await api.get<SiteOut>(`/v1/sites/${enc(name)}`).catch((err: unknown) => {
        if (isNotFound(err)) return undefined;
        throw err;
      });
      const { status: _status, ...site } = object;
      const { resourceVersion: _rv, uid: _uid, creationTimestamp: _ct, ...metadata } = site.metadata;
      if (!stored) {
        await api.post('/v1/sites', { ...site, metadata });
        return 'created';
      }
      if (sameSite(object, stored)) return 'unchanged';
      // The version just read: a writer that changed the site in between makes this PUT fail (409), not vanish.
      const updated = await api.put<SiteOut & { reconcile?: { started?: string; notStarted?: string } }>(
        `/v1/sites/${enc(name)}`,
        { ...site, metadata: { ...metadata, resourceVersion: stored.metadata.resourceVersion } },
      );
      if (updated.reconcile?.started) return `configured; its hosts changed: ${updated.reconcile.started} started`;
      if (updated.reconcile?.notStarted) return `configured; hosts not reconciled yet: ${updated.reconcile.notStarted}`;
      return 'configured';
    });
  }
  return exitCode;
}

function secretBody(secret: Secret): Secret {
  const { resourceVersion: _rv, uid: _uid, creationTimestamp: _ct, ...metadata } = secret.metadata;
  return { ...secret, metadata };
}

// ------------------------------------------------------------------------------------------------------------------ get

export type Kind = 'site' | 'profile' | 'artifact' | 'secret';

const kindAliases: Record<string, Kind> = {
  site: 'site',
  sites: 'site',
  profile: 'profile',
  profiles: 'profile',
  softwareprofile: 'profile',
  softwareprofiles: 'profile',
  artifact: 'artifact',
  artifacts: 'artifact',
  secret: 'secret',
  secrets: 'secret',
};

export function kindOf(word: string): Kind {
  const kind = kindAliases[word.toLowerCase()];
  if (!kind) {
    throw new InputError([
      { where: word, field: '', message: 'unknown kind; expected sites, profiles, artifacts or secrets' },
    ]);
  }
  return kind;
}

const isDigest = (s: string) => /^[a-f0-9]{64}$/.test(s);

async function listSites(api: ApiClient, selector: string | undefined): Promise<SiteOut[]> {
  const items: SiteOut[] = [];
  let next: string | undefined;
  do {
    const q = new URLSearchParams({ limit: '500' });
    if (selector !== undefined) q.set('labelSelector', selector);
    if (next !== undefined) q.set('continue', next);
    const page = await api.get<{ items: SiteOut[]; continue?: string }>(`/v1/sites?${q.toString()}`);
    items.push(...page.items);
    next = page.continue;
  } while (next !== undefined);
  return items;
}

async function findArtifacts(api: ApiClient, name?: string, version?: string): Promise<ArtifactOut[]> {
  if (name !== undefined && isDigest(name)) return [await api.get<ArtifactOut>(`/v1/artifacts/${name}`)];
  const q = name !== undefined ? `?name=${enc(name)}` : '';
  const { items } = await api.get<{ items: ArtifactOut[] }>(`/v1/artifacts${q}`);
  return version === undefined ? items : items.filter((a) => a.version === version);
}

const controlPlanes = (s: SiteOut) => s.spec.hosts.filter((h) => h.role === 'control-plane').length;

export async function get(
  api: ApiClient,
  kind: Kind,
  name: string | undefined,
  version: string | undefined,
  opts: { selector?: string; output: OutputFormat },
): Promise<void> {
  if (opts.selector !== undefined && kind !== 'site') {
    throw new InputError([{ where: 'get', field: 'selector', message: '-l is only for sites' }]);
  }
  // One named object prints as itself, a listing as a List, as kubectl does.
  const emit = (items: unknown[]) => {
    if (opts.output === 'table') return false;
    printData(name !== undefined && items.length === 1 ? items[0] : { kind: 'List', items }, opts.output);
    return true;
  };
  switch (kind) {
    case 'site': {
      const sites =
        name !== undefined ? [await api.get<SiteOut>(`/v1/sites/${enc(name)}`)] : await listSites(api, opts.selector);
      if (emit(sites)) return;
      printTable(
        ['NAME', 'PROFILE', 'HOSTS', 'CONTROL-PLANE', 'PHASE', 'LABELS', 'AGE'],
        sites.map((s) => [
          s.metadata.name,
          `${s.spec.softwareProfile.name}@${s.spec.softwareProfile.version}`,
          String(s.spec.hosts.length),
          String(controlPlanes(s)),
          s.status?.phase ?? 'Pending',
          labelsText(s.metadata.labels),
          age(s.metadata.creationTimestamp),
        ]),
      );
      return;
    }
    case 'profile': {
      let profiles: ProfileOut[];
      if (name !== undefined && version !== undefined) {
        profiles = [await api.get<ProfileOut>(`/v1/profiles/${enc(name)}/${enc(version)}`)];
      } else {
        const q = name !== undefined ? `?name=${enc(name)}` : '';
        profiles = (await api.get<{ items: ProfileOut[] }>(`/v1/profiles${q}`)).items;
        if (name !== undefined && profiles.length === 0) throw notFound('profile', name);
      }
      if (emit(profiles)) return;
      printTable(
        ['NAME', 'VERSION', 'OS-IMAGE', 'BINARY-PACKAGES', 'CONTAINER-PACKAGES', 'AGE'],
        profiles.map((p) => [
          p.metadata.name,
          p.spec.version,
          p.spec.osImage.sha256.slice(0, 12),
          p.spec.binaryPackages.map((b) => `${b.name}@${b.version}`).join(',') || '<none>',
          p.spec.containerPackages.map((c) => `${c.name}@${c.version}`).join(',') || '<none>',
          age(p.metadata.creationTimestamp),
        ]),
      );
      return;
    }
    case 'artifact': {
      const artifacts = await findArtifacts(api, name, version);
      if (name !== undefined && artifacts.length === 0) throw notFound('artifact', name);
      if (emit(artifacts)) return;
      printTable(
        ['TYPE', 'NAME', 'VERSION', 'SIZE', 'SHA256', 'AGE'],
        artifacts.map((a) => [a.type, a.name, a.version, bytes(a.size), a.sha256, age(a.createdAt)]),
      );
      return;
    }
    case 'secret': {
      // Summaries only: the API never returns values, and icnctl would not print them if it did.
      const secrets =
        name !== undefined
          ? [await api.get<SecretSummary>(`/v1/secrets/${enc(name)}`)]
          : (await api.get<{ items: SecretSummary[] }>('/v1/secrets')).items;
      if (emit(secrets.map(secretSummaryOnly))) return;
      printTable(
        ['NAME', 'TYPE', 'KEYS', 'AGE'],
        secrets.map((s) => [s.metadata.name, s.type, s.keys.join(','), age(s.metadata.creationTimestamp)]),
      );
      return;
    }
  }
}

// Defence in depth: whatever a future API version adds to a summary, icnctl prints only these fields.
const secretSummaryOnly = (s: SecretSummary): SecretSummary => ({
  apiVersion: s.apiVersion,
  kind: s.kind,
  metadata: s.metadata,
  type: s.type,
  keys: s.keys,
});

const notFound = (kind: string, name: string) => new ApiError(`${kind} "${name}" not found`, 404);

// ------------------------------------------------------------------------------------------------------------- describe

export async function describeSite(api: ApiClient, name: string, output: OutputFormat): Promise<void> {
  const site = await api.get<SiteOut>(`/v1/sites/${enc(name)}`);
  if (output !== 'table') {
    printData(site, output);
    return;
  }
  const { metadata: m, spec: s, status } = site;
  const c = s.cluster;
  const field = (label: string, value: string) => {
    console.log(`${`${label}:`.padEnd(20)}${value}`);
  };
  field('Name', m.name);
  field('Labels', labelsText(m.labels));
  field('Annotations', labelsText(m.annotations));
  field('Created', `${m.creationTimestamp} (${age(m.creationTimestamp)} ago)`);
  field('Resource version', m.resourceVersion);
  field('Location', s.location ?? '-');
  field('Agent mode', s.agentMode);
  field('Software profile', `${s.softwareProfile.name}@${s.softwareProfile.version}`);
  console.log('Endpoints:');
  field('  Ironic', s.endpoints.ironicUrl);
  field('  BPA', s.endpoints.bpaUrl);
  if (s.endpoints.bpaTokenRef) field('  BPA token', `secret/${s.endpoints.bpaTokenRef.name}`);
  if (s.endpoints.bootstrapKubeconfigRef) {
    field('  Bootstrap cluster', `secret/${s.endpoints.bootstrapKubeconfigRef.name}`);
  }
  console.log('Cluster:');
  field('  Kubernetes', `${c.kubernetesVersion} (${c.provisioner}, ${c.cni})`);
  field('  Endpoint', `${c.controlPlaneEndpoint.host}:${c.controlPlaneEndpoint.port}`);
  field('  Pod CIDR', c.podCidr);
  field('  Service CIDR', c.serviceCidr);
  console.log(`Hosts (${s.hosts.length}):`);
  const hostState = status?.hosts ?? {};
  printTable(
    ['  NAME', 'ROLE', 'BMC', 'CREDENTIALS', 'BOOT-MAC', 'SSH', 'STATE'],
    s.hosts.map((h) => [
      `  ${h.name}`,
      h.role,
      h.bmc.address,
      `secret/${h.bmc.credentialsRef.name}`,
      h.bootMacAddress,
      `${h.ssh.user}@${h.ssh.address}:${h.ssh.port}`,
      hostState[h.name]?.state ?? '-',
    ]),
  );
  console.log('Status:');
  field('  Phase', status?.phase ?? 'Pending');
  field(
    '  Installed profile',
    status?.installedProfile ? `${status.installedProfile.name}@${status.installedProfile.version}` : '<none>',
  );
  if (status?.kubernetesVersion) field('  Kubernetes', status.kubernetesVersion);
  if (status?.operation) field('  Operation', `${status.operation.type} (${status.operation.workflowId})`);
  if (status?.message) field('  Message', status.message);
}

// --------------------------------------------------------------------------------------------------------------- delete

export async function remove(api: ApiClient, kind: Kind, name: string, version: string | undefined): Promise<void> {
  switch (kind) {
    case 'site':
      await api.delete(`/v1/sites/${enc(name)}`);
      console.log(`site/${name} deleted`);
      return;
    case 'secret':
      await api.delete(`/v1/secrets/${enc(name)}`);
      console.log(`secret/${name} deleted`);
      return;
    case 'profile':
      if (version === undefined) {
        throw new InputError([
          { where: 'delete profile', field: 'version', message: 'is required: icnctl delete profile NAME VERSION' },
        ]);
      }
      await api.delete(`/v1/profiles/${enc(name)}/${enc(version)}`);
      console.log(`profile/${name}@${version} deleted`);
      return;
    case 'artifact': {
      // By digest, or by name and version when exactly one artifact has them.
      let digest = name;
      if (!isDigest(name)) {
        if (version === undefined) {
          throw new InputError([
            { where: 'delete artifact', field: 'version', message: 'is required unless NAME is a sha256 digest' },
          ]);
        }
        const found = await findArtifacts(api, name, version);
        if (found.length === 0) throw notFound('artifact', `${name}@${version}`);
        if (found.length > 1) {
          throw new InputError([
            {
              where: 'delete artifact',
              field: 'name',
              message: `${found.length} artifacts are ${name}@${version} (${found.map((a) => a.type).join(', ')}); name one by its sha256`,
            },
          ]);
        }
        digest = found[0]?.sha256 ?? name;
      }
      await api.delete(`/v1/artifacts/${digest}`);
      console.log(`artifact/${digest} deleted`);
      return;
    }
  }
}

// --------------------------------------------------------------------------------------------------------------- upload

/** sha256 of a file, read as a stream: OS images are gigabytes. */
export async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

export async function upload(
  api: ApiClient,
  file: string,
  opts: { type: string; name: string; version: string; metadata: Record<string, string>; output: OutputFormat },
): Promise<void> {
  let size: number;
  try {
    const st = statSync(file);
    if (!st.isFile()) throw new Error('not a file');
    size = st.size;
  } catch {
    throw new InputError([{ where: file, field: '', message: 'is not a readable file' }]);
  }
  const sha256 = await sha256File(file);
  const q = new URLSearchParams({
    type: opts.type,
    name: opts.name,
    version: opts.version,
    sha256,
    size: String(size),
  });
  if (Object.keys(opts.metadata).length > 0) q.set('metadata', JSON.stringify(opts.metadata));
  const { status, body } = await api.upload<ArtifactOut>(`/v1/artifacts?${q.toString()}`, file, size);
  if (opts.output !== 'table') {
    printData(body, opts.output);
    return;
  }
  console.log(
    `artifact/${body.name}@${body.version} ${status === 201 ? 'created' : 'unchanged'} sha256:${body.sha256}`,
  );
}
