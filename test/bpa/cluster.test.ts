// Needs: real sshd hosts (3 of its own, from the ssh-hosts lab peer's startSshHosts); kubeadm, kubelet and containerd
// are the lab's recording scripts (test/fixtures/packages).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { type SshHostsInfo, startSshHosts, stopSshHosts } from '../../deploy/dev/lab/ssh-hosts.ts';
import type { ClusterSpec } from '../../src/domain/bpa.ts';
import { keyRef, labPackage, onHost, startBpa, type TestBpa, uploadPackage } from './support.ts';

let dir: string;
let info: SshHostsInfo;
let bpa: TestBpa;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'icn-bpa-cluster-'));
  info = await startSshHosts({ count: 3, dir: join(dir, 'lab') });
  bpa = await startBpa(join(dir, 'bpa'), info);
});

afterAll(async () => {
  await bpa.close();
  await stopSshHosts(join(dir, 'lab'));
  rmSync(dir, { recursive: true, force: true });
});

describe('BPA cluster bring-up with kubeadm', () => {
  it('installs the packages, runs init then the joins in order, and returns the kubeconfig', async () => {
    const pkgs = [
      labPackage(join(dir, 'pkgs'), 'containerd', 'containerd', '1.7.24'),
      labPackage(join(dir, 'pkgs'), 'kubelet', 'kubelet', '1.34.2'),
      labPackage(join(dir, 'pkgs'), 'kubeadm', 'kubeadm', '1.34.2'),
    ];
    for (const p of pkgs) await uploadPackage(bpa.client, p);
    const [h1, h2, h3] = info.hosts as [SshHostsInfo['hosts'][0], SshHostsInfo['hosts'][0], SshHostsInfo['hosts'][0]];
    const host = (h: typeof h1, role: 'control-plane' | 'worker') => ({
      name: h.name,
      address: h.host,
      port: h.port,
      role,
      keyRef,
    });
    const spec: ClusterSpec = {
      name: 'edge-1',
      kubernetesVersion: 'v1.34.2',
      controlPlaneEndpoint: { host: '10.10.0.10' },
      // Listed worker first: the BPA still joins the control plane before it.
      hosts: [host(h1, 'control-plane'), host(h3, 'worker'), host(h2, 'control-plane')],
      packages: pkgs.map((p) => p.pkg),
    };
    const started = await bpa.client.startCluster(spec);
    expect(started).toMatchObject({ name: 'edge-1', jobId: 'cluster-edge-1' });
    const job = await bpa.bpa.engine.waitFor('cluster-edge-1');
    expect(job.state).toBe('succeeded');
    const status = await bpa.client.getCluster('edge-1');
    expect(status).toMatchObject({
      state: 'succeeded',
      kubeconfigReady: true,
      steps: ['packages', `init ${h1.name}`, `join ${h2.name}`, `join ${h3.name}`, 'kubeconfig'],
    });

    for (const h of info.hosts) {
      for (const p of ['containerd', 'kubelet'])
        expect(onHost(h.root, 'opt', p, 'version')).toBe(p === 'kubelet' ? '1.34.2' : '1.7.24');
      expect(onHost(h.root, 'var/lib/fixture/kubeadm/install.count')).toBe('1');
    }
    const calls = (h: typeof h1) => onHost(h.root, 'var/lib/fixture/kubeadm/calls')?.split('\n') ?? [];
    expect(calls(h1)[0]).toBe(
      'kubeadm init --kubernetes-version=v1.34.2 --control-plane-endpoint=10.10.0.10:6443 --pod-network-cidr=10.244.0.0/16 --service-cidr=10.96.0.0/12 --node-name=host-001',
    );
    expect(calls(h1)).toContain('kubeadm init phase upload-certs --upload-certs');
    expect(calls(h2)).toEqual([
      `kubeadm join 10.10.0.10:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:${'0'.repeat(64)} --node-name=host-002 --control-plane --certificate-key=${'0123456789abcdef'.repeat(4)}`,
    ]);
    expect(calls(h3)).toEqual([
      `kubeadm join 10.10.0.10:6443 --token abcdef.0123456789abcdef --discovery-token-ca-cert-hash sha256:${'0'.repeat(64)} --node-name=host-003`,
    ]);

    const kubeconfig = await bpa.client.kubeconfig('edge-1');
    expect(kubeconfig).toBe(readFileSync(join(h1.root, 'etc/kubernetes/admin.conf'), 'utf8'));
    expect(parse(kubeconfig!)).toMatchObject({ clusters: [{ cluster: { server: 'https://10.10.0.10:6443' } }] });

    // Asked again, it is the same bring-up: nothing runs twice.
    const again = await bpa.client.startCluster(spec);
    expect(again.state).toBe('succeeded');
    expect(calls(h1).filter((c) => c.startsWith('kubeadm init --'))).toHaveLength(1);
    expect(await bpa.client.kubeconfig('no-such-cluster')).toBeUndefined();
  });
});
