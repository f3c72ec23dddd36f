import { describe, expect, it } from '@jest/globals';
import { Site } from '../../src/domain/site.ts';
import { SoftwareProfile } from '../../src/domain/software-profile.ts';
import { PatchRequest, RolloutRequest } from '../../src/domain/operations.ts';

const host = (i: number, role: 'control-plane' | 'worker') => ({
  name: `host-${i}`,
  role,
  bmc: { address: `redfish://10.0.0.${i}/redfish/v1/Systems/${i}`, credentialsRef: { name: 'bmc' } },
  bootMacAddress: `52:54:00:00:00:0${i}`,
  ssh: { address: `10.1.0.${i}`, keyRef: { name: 'ssh' } },
});

const site = (overrides: Record<string, unknown> = {}, hosts = [host(1, 'control-plane'), host(2, 'worker')]) => ({
  apiVersion: 'icn.akraino.org/v1alpha1',
  kind: 'Site',
  metadata: { name: 'edge-01', labels: { region: 'eu-west', tier: 'edge' } },
  spec: {
    endpoints: { ironicUrl: 'http://10.0.0.2:6385', bpaUrl: 'http://10.0.0.2:9015' },
    cluster: { kubernetesVersion: 'v1.34.2', controlPlaneEndpoint: { host: '10.1.0.100' } },
    softwareProfile: { name: 'edge-base', version: '1.0.0' },
    hosts,
    ...overrides,
  },
});

function issues(input: unknown): string[] {
  const r = Site.safeParse(input);
  return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
}

describe('Site', () => {
  it('accepts a valid site and fills defaults', () => {
    const parsed = Site.parse(site());
    expect(parsed.spec.agentMode).toBe('central');
    expect(parsed.spec.cluster).toMatchObject({ podCidr: '10.244.0.0/16', provisioner: 'kubeadm' });
    expect(parsed.spec.hosts[0]?.ssh).toMatchObject({ port: 22, user: 'root' });
  });

  it('refuses duplicate host names and boot MACs, naming the second', () => {
    const dup = { ...host(2, 'worker'), name: 'host-1', bootMacAddress: '52:54:00:00:00:01' };
    expect(issues(site({}, [host(1, 'control-plane'), dup]))).toEqual([
      'spec.hosts.1.name: duplicates hosts[0].name',
      'spec.hosts.1.bootMacAddress: duplicates hosts[0].bootMacAddress',
    ]);
  });

  it.each([0, 2, 4])('refuses %i control-plane hosts', (n) => {
    const hosts = [...Array.from({ length: n }, (_, i) => host(i + 1, 'control-plane')), host(9, 'worker')];
    expect(issues(site({}, hosts))).toEqual([
      `spec.hosts: needs exactly 1 or 3 control-plane hosts (etcd quorum), has ${n}`,
    ]);
  });

  it('refuses overlapping pod and service CIDRs and invalid ones', () => {
    const cluster = (podCidr: string, serviceCidr: string) => ({
      cluster: { kubernetesVersion: '1.34.2', controlPlaneEndpoint: { host: 'cp' }, podCidr, serviceCidr },
    });
    expect(issues(site(cluster('10.0.0.0/8', '10.96.0.0/12')))).toEqual([
      'spec.cluster.serviceCidr: overlaps cluster.podCidr',
    ]);
    expect(issues(site(cluster('10.244.0.0/16', '10.96.0.0/12')))).toEqual([]);
    expect(issues(site(cluster('10.244.0.0/33', '10.96.0.0/12')))[0]).toMatch(
      /^spec.cluster.podCidr: must be an IPv4 or IPv6 CIDR/,
    );
  });

  it('names each bad field: version, MAC, BMC scheme, unknown field', () => {
    const bad = site({
      cluster: { kubernetesVersion: '1.34', controlPlaneEndpoint: { host: 'cp' } },
      hosts: [
        {
          ...host(1, 'control-plane'),
          bootMacAddress: 'zz:zz',
          bmc: { address: 'http://x', credentialsRef: { name: 'b' } },
        },
      ],
      colour: 'blue',
    });
    const found = issues(bad).map((i) => i.split(':')[0]);
    expect(found).toEqual(
      expect.arrayContaining([
        'spec.cluster.kubernetesVersion',
        'spec.hosts.0.bootMacAddress',
        'spec.hosts.0.bmc.address',
        'spec',
      ]),
    );
  });
});

describe('SoftwareProfile and RolloutRequest', () => {
  const digest = (c: string) => c.repeat(64);
  it('refuses duplicate package names', () => {
    const pkg = {
      name: 'kubelet',
      version: '1.34.2',
      artifact: { sha256: digest('a') },
      install: 'sh i',
      verify: 'sh v',
    };
    const r = SoftwareProfile.safeParse({
      apiVersion: 'icn.akraino.org/v1alpha1',
      kind: 'SoftwareProfile',
      metadata: { name: 'edge-base' },
      spec: { version: '1.0.0', osImage: { sha256: digest('b') }, binaryPackages: [pkg, pkg] },
    });
    expect(r.success ? [] : r.error.issues.map((i) => i.path.join('.'))).toEqual(['spec.binaryPackages.1.name']);
  });

  it("bounds a patch's host takeover and refuses it on other rollouts, naming the field", () => {
    const issues = (request: object) => {
      const r = RolloutRequest.safeParse({ selector: { matchLabels: { tier: 'edge' } }, ...request });
      return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    };
    const profile = { name: 'edge-base', version: '1.1.0' };
    expect(issues({ operation: 'patch', profile, hostTakeoverSeconds: 600 })).toEqual([]);
    expect(issues({ operation: 'patch', profile, hostTakeoverSeconds: 10 })).toEqual([
      expect.stringMatching(/^hostTakeoverSeconds: .*30/),
    ]);
    expect(issues({ operation: 'upgrade', kubernetesVersion: 'v1.35.0', hostTakeoverSeconds: 600 })).toEqual([
      'hostTakeoverSeconds: applies to a patch rollout only',
    ]);
    expect(PatchRequest.safeParse({ profile, hostTakeoverSeconds: 7200 }).error?.issues[0]?.path).toEqual([
      'hostTakeoverSeconds',
    ]);
  });

  it('requires the profile of a patch rollout', () => {
    const r = RolloutRequest.safeParse({ selector: { matchLabels: { tier: 'edge' } }, operation: 'patch' });
    expect(r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`)).toEqual([
      'profile: is required for a patch rollout',
    ]);
  });
});
