/**
 * An inventory of simulated sites, as an operator would have it after installing them: two software profiles (the
 * one installed, and the patch, which changes only binary packages, so that a patch calls no Helm), their artifacts,
 * and per site its spec (Cluster-API, endpoints on the simulation server), its installed status and its secrets: the
 * BPA token and the bootstrap cluster's kubeconfig (the application cluster's is fetched by the patch itself).
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import type { ArtifactSpec } from '../../src/domain/artifact.ts';
import { SiteSpec, type SiteStatus } from '../../src/domain/site.ts';
import type { BinaryPackage, SoftwareProfileSpec } from '../../src/domain/software-profile.ts';
import type { Store } from '../../src/store/index.ts';
import { type SimServerInfo, simEndpoints, simKubeconfig, simTokens } from './server.ts';
import type { SimHostLayout, SimLayout } from './sites.ts';

export const profileName = 'edge';
export const installedVersion = '1.0.0';
export const patchVersion = '1.1.0';
export const kubernetesVersion = '1.34.2';
const sshKeySecret = 'sim-ssh-key';
const bmcSecret = 'sim-bmc';

/** The first host is the control plane, the others workers: h00, h01, ... */
export function simHosts(count: number): SimHostLayout[] {
  return Array.from({ length: count }, (_, i) => ({
    name: `h${String(i).padStart(2, '0')}`,
    role: i === 0 ? 'control-plane' : 'worker',
  }));
}

interface Content {
  spec: ArtifactSpec;
  bytes: Buffer;
}

function artifact(type: ArtifactSpec['type'], name: string, version: string): Content {
  const bytes = Buffer.from(`#!/bin/sh\n# ${name} ${version}: simulated content\nexit 0\n`);
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  return { spec: { type, name, version, sha256, size: bytes.length, metadata: {} }, bytes };
}

const osImage = artifact('os-image', 'edge-os', '1.0.0');

function packages(version: string): { pkg: BinaryPackage; content: Content }[] {
  return [
    { name: 'nic-driver', rebootRequired: true },
    { name: 'node-agent', rebootRequired: false },
  ].map(({ name, rebootRequired }) => {
    const content = artifact('binary-package', name, version);
    return {
      content,
      pkg: {
        name,
        version,
        artifact: { sha256: content.spec.sha256 },
        install: 'sh "$ICN_PACKAGE_FILE"',
        verify: 'true',
        rebootRequired,
      },
    };
  });
}

function profile(version: string): { spec: SoftwareProfileSpec; contents: Content[] } {
  const pkgs = packages(version);
  return {
    spec: {
      version,
      osImage: { sha256: osImage.spec.sha256 },
      binaryPackages: pkgs.map((p) => p.pkg),
      containerPackages: [],
    },
    contents: [osImage, ...pkgs.map((p) => p.content)],
  };
}

/** What the simulation needs to know of the fleet: every site's hosts and what they run before the patch. */
export function simLayout(hostsPerSite: number): SimLayout {
  return {
    hosts: simHosts(hostsPerSite),
    installed: packages(installedVersion).map(({ pkg }) => ({
      name: pkg.name,
      version: pkg.version,
      sha256: pkg.artifact.sha256,
    })),
    kubeletVersion: kubernetesVersion,
  };
}

/** The fleet-wide part: profiles, their artifacts, the SSH key and BMC credentials every host shares. */
export async function seedProfiles(store: Store): Promise<void> {
  for (const version of [installedVersion, patchVersion]) {
    const { spec, contents } = profile(version);
    for (const c of contents) await store.artifacts.upload(c.spec, Readable.from([c.bytes]));
    await store.profiles.create({ name: profileName }, spec);
  }
  await store.secrets.put({ name: sshKeySecret }, 'ssh-key', {
    privateKey: '-----BEGIN OPENSSH PRIVATE KEY-----\nc2ltdWxhdGVkIGtleQ==\n-----END OPENSSH PRIVATE KEY-----\n',
  });
  await store.secrets.put({ name: bmcSecret }, 'bmc-credentials', { username: 'admin', password: 'simulated' });
}

export function simSiteSpec(info: SimServerInfo, site: string, hosts: SimHostLayout[]): SiteSpec {
  return SiteSpec.parse({
    location: 'simulated',
    endpoints: {
      ...simEndpoints(info, site),
      bpaTokenRef: { name: `${site}-bpa-token` },
      bootstrapKubeconfigRef: { name: `${site}-bootstrap-kubeconfig` },
    },
    cluster: { kubernetesVersion, controlPlaneEndpoint: { host: '10.20.0.10' }, provisioner: 'cluster-api' },
    softwareProfile: { name: profileName, version: installedVersion },
    hosts: hosts.map((h, i) => ({
      name: h.name,
      role: h.role,
      bmc: { address: `redfish://10.1.0.${i + 10}/redfish/v1/Systems/1`, credentialsRef: { name: bmcSecret } },
      bootMacAddress: `52:54:00:00:00:${(i + 16).toString(16)}`,
      ssh: { address: `10.0.0.${i + 10}`, keyRef: { name: sshKeySecret } },
    })),
  });
}

/** One installed site: spec, status and its own secrets. */
export async function seedSite(
  store: Store,
  info: SimServerInfo,
  site: string,
  hosts: SimHostLayout[],
  labels: Record<string, string> = {},
): Promise<void> {
  const installed = Object.fromEntries(packages(installedVersion).map(({ pkg }) => [pkg.name, pkg.version]));
  await store.secrets.put({ name: `${site}-bpa-token` }, 'token', { token: simTokens.bpa(site) });
  await store.secrets.put({ name: `${site}-bootstrap-kubeconfig` }, 'kubeconfig', {
    kubeconfig: simKubeconfig(info, site, 'bootstrap'),
  });
  await store.sites.create({ name: site, labels }, simSiteSpec(info, site, hosts));
  const status: SiteStatus = {
    phase: 'Ready',
    installedProfile: { name: profileName, version: installedVersion },
    kubernetesVersion,
    hosts: Object.fromEntries(hosts.map((h) => [h.name, { state: 'Ready', packages: installed }])),
  };
  await store.sites.setStatus(site, status);
}

/** Many sites, a few at a time (the store's pool has ten connections). */
export async function seedSites(
  store: Store,
  info: SimServerInfo,
  sites: string[],
  hosts: SimHostLayout[],
  labels: Record<string, string> = {},
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < sites.length) {
        const site = sites[next++];
        if (site !== undefined) await seedSite(store, info, site, hosts, labels);
      }
    }),
  );
}
