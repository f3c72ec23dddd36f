// Needs: nothing but PGlite; runs icnctl as a process against a listening API (no Temporal: inventory routes only).
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { parse as parseYaml, stringify } from 'yaml';
import type { Store } from '../../src/store/index.ts';
import { buildTestApi, tokens } from '../support/api.ts';
import { openTestStore } from '../support/store.ts';

const icnctl = fileURLToPath(new URL('../../src/cli/icnctl.ts', import.meta.url));
const fixtures = fileURLToPath(new URL('../fixtures/inventory/', import.meta.url));
let store: Store;
let api: Awaited<ReturnType<typeof buildTestApi>>;
let apiUrl: string;
let work: string;
const digests: Record<'os' | 'pkg' | 'chart', string> = { os: '', pkg: '', chart: '' };

beforeAll(async () => {
  store = await openTestStore('pglite');
  api = await buildTestApi({ store });
  apiUrl = await api.listen({ host: '127.0.0.1', port: 0 });
  work = mkdtempSync(join(tmpdir(), 'icnctl-inventory-'));
});
afterAll(async () => {
  await api.close();
  await store.close();
  rmSync(work, { recursive: true, force: true });
});

async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)(process.execPath, [icnctl, '--server', apiUrl, ...args], {
      env: { ...process.env, ICN_API_TOKEN: tokens.writer },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** The profile names its artifacts by digest, so it is written here, once they are known. */
function writeProfile(): string {
  const dir = join(work, 'profiles', 'nested');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'edge-base.yaml'),
    stringify({
      apiVersion: 'icn.akraino.org/v1alpha1',
      kind: 'SoftwareProfile',
      metadata: { name: 'edge-base', labels: { channel: 'stable' } },
      spec: {
        version: '1.0.0',
        osImage: { sha256: digests.os },
        binaryPackages: [
          {
            name: 'containerd',
            version: '2.1.4',
            artifact: { sha256: digests.pkg },
            install: 'tar -C /usr/local -xzf "$ARTIFACT"',
            verify: 'containerd --version',
          },
        ],
        containerPackages: [
          { name: 'icn-test-app', version: '0.1.0', chart: { sha256: digests.chart }, namespace: 'apps' },
        ],
      },
    }),
  );
  return join(work, 'profiles');
}

describe('icnctl inventory against a running API', () => {
  it('uploads artifacts, printing the digest it computed, and is idempotent', async () => {
    const files = {
      os: { bytes: randomBytes(300 * 1024), type: 'os-image', name: 'edge-os' },
      pkg: { bytes: randomBytes(4096), type: 'binary-package', name: 'containerd' },
      chart: { bytes: readFileSync(join(fixtures, 'site', 'site.yaml')), type: 'helm-chart', name: 'icn-test-app' },
    };
    for (const [key, f] of Object.entries(files) as [keyof typeof files, (typeof files)['os']][]) {
      const path = join(work, `${key}.bin`);
      writeFileSync(path, f.bytes);
      const version = key === 'pkg' ? '2.1.4' : key === 'chart' ? '0.1.0' : '1.0.0';
      const r = await run(
        'upload',
        path,
        '--type',
        f.type,
        '--name',
        f.name,
        '--version',
        version,
        '--metadata',
        'arch=amd64',
      );
      expect(r).toMatchObject({ code: 0, stderr: '' });
      const digest = sha256(f.bytes);
      expect(r.stdout.trim()).toBe(`artifact/${f.name}@${version} created sha256:${digest}`);
      digests[key] = digest;
      const stored = await store.artifacts.get(digest);
      expect(stored).toMatchObject({ size: f.bytes.length, type: f.type, metadata: { arch: 'amd64' } });
    }
    const again = await run(
      'upload',
      join(work, 'os.bin'),
      '--type',
      'os-image',
      '--name',
      'edge-os',
      '--version',
      '1.0.0',
    );
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('unchanged');

    const clash = await run(
      'upload',
      join(work, 'pkg.bin'),
      '--type',
      'os-image',
      '--name',
      'edge-os',
      '--version',
      '1.0.0',
    );
    expect(clash.code).toBe(2);
    expect(clash.stderr).toContain('sha256: this content is already stored');
    const missing = await run(
      'upload',
      join(work, 'nope.bin'),
      '--type',
      'os-image',
      '--name',
      'x',
      '--version',
      '1.0.0',
    );
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('nope.bin: is not a readable file');
  });

  it('applies a folder of secrets, a profile and a site, in dependency order', async () => {
    const profiles = writeProfile();
    // The site's file comes first on the command line: apply orders by kind, not by file.
    const r = await run('apply', '-f', join(fixtures, 'site'), '-f', profiles);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([
      'secret/edge-01-bmc created',
      'secret/edge-01-ssh created',
      'profile/edge-base@1.0.0 created',
      'site/edge-01 created',
    ]);
    expect(r.stdout + r.stderr).not.toContain('s3cr3t');

    const site = await store.sites.get('edge-01');
    expect(site.metadata.labels).toEqual({ region: 'eu-west', tier: 'edge' });
    expect(site.spec.hosts.map((h) => [h.name, h.role, h.bootMacAddress])).toEqual([
      ['edge-01-cp-0', 'control-plane', '52:54:00:0a:01:11'],
      ['edge-01-worker-0', 'worker', '52:54:00:0a:01:12'],
    ]);
    expect(await store.secrets.reveal('edge-01-bmc')).toEqual({
      type: 'bmc-credentials',
      data: { username: 'admin', password: 's3cr3t-bmc-password' },
    });
    expect((await store.profiles.get('edge-base', '1.0.0')).spec.binaryPackages[0]?.artifact.sha256).toBe(digests.pkg);

    const again = await run('apply', '-f', join(fixtures, 'site'), '-f', profiles);
    expect(again.code).toBe(0);
    expect(again.stdout.trim().split('\n')).toEqual([
      'secret/edge-01-bmc configured',
      'secret/edge-01-ssh configured',
      'profile/edge-base@1.0.0 unchanged',
      'site/edge-01 unchanged',
    ]);
    expect((await store.sites.get('edge-01')).metadata.resourceVersion).toBe(site.metadata.resourceVersion);

    // A changed site is replaced under the version that was read.
    const changed = readFileSync(join(fixtures, 'site', 'site.yaml'), 'utf8').replace('tier: edge', 'tier: far-edge');
    writeFileSync(join(work, 'site-changed.yaml'), changed);
    const update = await run('apply', '-f', join(work, 'site-changed.yaml'));
    expect(update).toMatchObject({ code: 0, stdout: 'site/edge-01 configured\n' });
    const updated = await store.sites.get('edge-01');
    expect(updated.metadata.labels.tier).toBe('far-edge');
    expect(Number(updated.metadata.resourceVersion)).toBeGreaterThan(Number(site.metadata.resourceVersion));
  });

  it('gets sites, profiles, artifacts and secrets as tables, JSON and YAML, without secret values', async () => {
    const sites = await run('get', 'sites');
    expect(sites.code).toBe(0);
    const [header, row, ...rest] = sites.stdout.trim().split('\n');
    expect(header?.split(/\s{3,}/)).toEqual(['NAME', 'PROFILE', 'HOSTS', 'CONTROL-PLANE', 'PHASE', 'LABELS', 'AGE']);
    expect(row?.split(/\s{3,}/).slice(0, 6)).toEqual([
      'edge-01',
      'edge-base@1.0.0',
      '2',
      '1',
      'Pending',
      'region=eu-west,tier=far-edge',
    ]);
    expect(rest).toEqual([]);

    expect((await run('get', 'sites', '-l', 'region=eu-west')).stdout).toContain('edge-01');
    expect((await run('get', 'sites', '-l', 'region=nowhere')).stdout.trim()).toBe('No resources found.');
    const badSelector = await run('get', 'sites', '-l', 'a=b=c');
    expect(badSelector.code).toBe(2);
    expect(badSelector.stderr).toContain('querystring.labelSelector');

    const yaml = await run('get', 'site', 'edge-01', '-o', 'yaml');
    expect(parseYaml(yaml.stdout)).toMatchObject({ kind: 'Site', metadata: { name: 'edge-01' } });

    const profiles = await run('get', 'profiles');
    expect(profiles.stdout).toMatch(/edge-base\s+1\.0\.0\s+[0-9a-f]{12}\s+containerd@2\.1\.4\s+icn-test-app@0\.1\.0/);
    const one = await run('-o', 'json', 'get', 'profile', 'edge-base', '1.0.0');
    expect(JSON.parse(one.stdout)).toMatchObject({ spec: { osImage: { sha256: digests.os } } });

    const artifacts = await run('get', 'artifacts');
    for (const d of Object.values(digests)) expect(artifacts.stdout).toContain(d);
    expect(artifacts.stdout).toMatch(/os-image\s+edge-os\s+1\.0\.0\s+300\.0 KiB/);

    const secrets = await run('get', 'secrets');
    expect(secrets.stdout).toMatch(/edge-01-bmc\s+bmc-credentials\s+password,username/);
    const secretsJson = await run('get', 'secrets', '-o', 'json');
    expect(JSON.parse(secretsJson.stdout)).toMatchObject({ kind: 'List' });
    for (const out of [secrets.stdout, secretsJson.stdout]) {
      expect(out).not.toContain('s3cr3t');
      expect(out).not.toContain('not-a-real-key');
    }

    const missing = await run('get', 'site', 'edge-77');
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('404');
  });

  it('describes a site: spec summary, hosts table and status', async () => {
    const r = await run('describe', 'site', 'edge-01');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/Software profile:\s+edge-base@1\.0\.0/);
    expect(r.stdout).toMatch(/Kubernetes:\s+v1\.34\.2 \(kubeadm, flannel\)/);
    expect(r.stdout).toMatch(/Pod CIDR:\s+10\.244\.0\.0\/16/);
    expect(r.stdout).toContain('Hosts (2):');
    expect(r.stdout).toMatch(
      /edge-01-cp-0\s+control-plane\s+ipmi:\/\/10\.10\.1\.11:623\s+secret\/edge-01-bmc\s+52:54:00:0a:01:11\s+root@10\.10\.0\.11:22/,
    );
    expect(r.stdout).toMatch(/edge-01-worker-0\s+worker\s+redfish:\/\//);
    expect(r.stdout).toMatch(/Phase:\s+Pending/);
  });

  it('refuses a broken site file before sending anything: exit 2, each field named', async () => {
    const before = (await store.sites.list()).items.length;
    const r = await run('apply', '-f', join(fixtures, 'broken'), '-f', join(fixtures, 'site'));
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(r.stderr).toContain('two-control-planes.yaml: spec.hosts: needs exactly 1 or 3 control-plane hosts');
    expect(r.stderr).toContain(
      'two-control-planes.yaml: spec.hosts.1.bootMacAddress: duplicates hosts[0].bootMacAddress',
    );
    expect((await store.sites.list()).items.length).toBe(before);

    // Valid in shape, refused by the API: the profile it names does not exist.
    const site = readFileSync(join(fixtures, 'site', 'site.yaml'), 'utf8')
      .replace('name: edge-01\n', 'name: edge-03\n')
      .replace('version: 1.0.0', 'version: 9.9.9');
    writeFileSync(join(work, 'edge-03.yaml'), site);
    const refused = await run('apply', '-f', join(work, 'edge-03.yaml'));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toContain('site/edge-03');
    expect(refused.stderr).toContain('spec.softwareProfile: software profile edge-base 9.9.9 does not exist');
    await expect(store.sites.get('edge-03')).rejects.toThrow('not found');

    writeFileSync(join(work, 'yaml-error.yaml'), 'kind: Site\nmetadata: [unclosed\n');
    const syntax = await run('apply', '-f', join(work, 'yaml-error.yaml'));
    expect(syntax.code).toBe(2);
    expect(syntax.stderr).toMatch(/yaml-error\.yaml: YAML line \d+/);
  });

  it('applies metal3 BareMetalHosts and their BMC Secrets as hosts of a site', async () => {
    const r = await run('apply', '-f', join(fixtures, 'metal3'));
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split('\n')).toEqual([
      'secret/edge-02-ssh created',
      'secret/edge-02-node-0-bmc created',
      'secret/edge-02-node-1-bmc created',
      'site/edge-02 created',
    ]);
    expect(r.stdout).not.toContain('password');

    const got = await run('get', 'sites', 'edge-02', '-o', 'json');
    expect(got.code).toBe(0);
    const site = JSON.parse(got.stdout) as { spec: { hosts: unknown[] } };
    expect(site.spec.hosts).toEqual([
      {
        name: 'edge-02-node-0',
        role: 'control-plane',
        bmc: {
          address: 'ipmi://10.30.1.10:6230',
          credentialsRef: { name: 'edge-02-node-0-bmc' },
          disableCertificateVerification: false,
        },
        bootMacAddress: '52:54:00:0c:02:00',
        rootDeviceHints: { deviceName: '/dev/nvme0n1', minSizeGigabytes: 200 },
        ssh: { address: '10.30.0.11', port: 22, user: 'root', keyRef: { name: 'edge-02-ssh' } },
      },
      {
        name: 'edge-02-node-1',
        role: 'worker',
        bmc: {
          address: 'redfish+https://10.30.1.11/redfish/v1/Systems/1',
          credentialsRef: { name: 'edge-02-node-1-bmc' },
          disableCertificateVerification: true,
        },
        bootMacAddress: '52:54:00:0c:02:01',
        ssh: { address: '10.30.0.12', port: 2222, user: 'ubuntu', keyRef: { name: 'edge-02-ssh' } },
      },
    ]);
    expect(await store.secrets.reveal('edge-02-node-1-bmc')).toEqual({
      type: 'bmc-credentials',
      data: { username: 'admin', password: 'node1-password' },
    });

    const orphan = await run('apply', '-f', join(fixtures, 'metal3-orphan'));
    expect(orphan.code).toBe(2);
    expect(orphan.stderr).toContain('metal3-orphan/host.yaml: metadata.labels.icn.akraino.org/site');
    expect(orphan.stderr).toContain('Site "edge-99" is not in this apply');
  });

  it('deletes, refusing what is still referenced', async () => {
    expect(await run('delete', 'site', 'edge-02')).toMatchObject({ code: 0, stdout: 'site/edge-02 deleted\n' });
    expect((await run('get', 'site', 'edge-02')).code).toBe(2);

    const inUse = await run('delete', 'profile', 'edge-base', '1.0.0');
    expect(inUse.code).toBe(2);
    expect(inUse.stderr).toContain('409');
    const artifactInUse = await run('delete', 'artifact', digests.os);
    expect(artifactInUse.code).toBe(2);
    expect(artifactInUse.stderr).toContain('edge-base@1.0.0');

    expect((await run('delete', 'site', 'edge-01')).code).toBe(0);
    expect((await run('delete', 'profile', 'edge-base', '1.0.0')).code).toBe(0);
    expect((await run('delete', 'artifact', digests.os)).stdout).toBe(`artifact/${digests.os} deleted\n`);
    expect((await run('delete', 'artifact', 'containerd', '2.1.4')).code).toBe(0);
    expect((await run('delete', 'artifact', digests.chart)).code).toBe(0);
    for (const s of ['edge-01-bmc', 'edge-01-ssh', 'edge-02-ssh', 'edge-02-node-0-bmc', 'edge-02-node-1-bmc']) {
      expect(await run('delete', 'secret', s)).toMatchObject({ code: 0, stdout: `secret/${s} deleted\n` });
    }
    expect((await store.sites.list()).items).toEqual([]);
    expect(await store.profiles.list()).toEqual([]);
    expect(await store.artifacts.list()).toEqual([]);
    expect(await store.secrets.list()).toEqual([]);
    const gone = await run('delete', 'secret', 'edge-01-bmc');
    expect(gone.code).toBe(2);
  });

  it('exits 3 when the token is refused', async () => {
    const r = await run('--token', 'wrong-token-0123456789', 'get', 'sites');
    expect(r.code).toBe(3);
    expect(r.stderr).toContain('401');
  });
});
