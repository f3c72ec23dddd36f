// Needs: the real Temporal dev server, Ironic (fake-hardware), the kubernetes lab peer (kube-apiserver + kwok, with
// the test-only Cluster-API/metal3 stand-in, which fails a host's deploy on demand), sshd hosts with a BPA,
// PostgreSQL, helm (tools cache). Faults: the worker process killed in every phase of an install, a host whose
// deploy fails, a patch whose second host fails.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from '@jest/globals';
import { HelmClient } from '../../src/clients/helm/index.ts';
import { IronicClient } from '../../src/clients/ironic/index.ts';
import { KubernetesClient } from '../../src/clients/kubernetes/index.ts';
import { type OperationProgress, progressQuery } from '../../src/domain/operations.ts';
import { onHost } from '../bpa/support.ts';
import { applyLabSite, type LabSite, startLabSite } from './lab-site.ts';

const labs: LabSite[] = [];
afterAll(async () => {
  for (const lab of labs) await lab.stop();
}, 120_000);

async function siteStatus(lab: LabSite): Promise<{ phase: string; message?: string; installedProfile?: unknown }> {
  const r = await lab.icnctl('get', 'site', lab.site, '-o', 'json');
  return (JSON.parse(r.stdout) as { status: { phase: string; message?: string } }).status;
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describe('faults during site operations', () => {
  it('an install survives its worker killed in every phase, and repeats no side effect', async () => {
    const lab = await startLabSite('kill');
    labs.push(lab);
    await applyLabSite(lab);
    await lab.startWorker();
    const started = await lab.icnctl('install', lab.site, '--no-wait');
    expect(started.code).toBe(0);
    const handle = lab.env.client.workflow.getHandle(`site/${lab.site}/install`);
    const phases = ['provisioning hosts', 'creating the cluster', 'installing binary packages', 'installing add-ons'];
    const killedIn: string[] = [];
    for (const phase of phases) {
      // The query needs a live worker: it is asked only between a restart and the next kill.
      for (let i = 0; i < 600; i++) {
        const step = await handle.query<OperationProgress>(progressQuery).then(
          (p) => p.step,
          () => '',
        );
        const reached = phases.indexOf(step) >= phases.indexOf(phase);
        if (reached || (await handle.describe()).status.name !== 'RUNNING') break;
        await sleep(100);
      }
      if ((await handle.describe()).status.name !== 'RUNNING') break;
      await lab.killWorker();
      killedIn.push(phase);
      await lab.startWorker();
    }
    await handle.result();
    console.log(`install with the worker killed in: ${killedIn.join(', ')}`);
    expect(killedIn.length).toBeGreaterThanOrEqual(3);

    const ironic = new IronicClient({ url: lab.ironic.url });
    for (const host of ['host-1', 'host-2', 'host-3']) {
      expect((await ironic.get(`site-${lab.site}~${host}`)).provision_state).toBe('active');
    }
    for (const h of lab.hosts.hosts) {
      // Installed once per host, whatever the kills: a retried activity joined the BPA job it had started.
      expect(onHost(h.root, 'var/lib/fixture/kubelet/install.count')).toBe('1');
    }
    const helm = new HelmClient({ helmBinary: lab.helmBinary, kubeconfigPath: lab.kube.kubeconfig });
    try {
      expect(await helm.status('icn-test-app', lab.chartNamespace)).toMatchObject({ revision: 1, status: 'deployed' });
    } finally {
      helm.close();
    }
    expect(await siteStatus(lab)).toMatchObject({ phase: 'Ready' });

    // The site is installed: a patch whose second host fails leaves it on its old profile.
    const failing = lab.hosts.hosts[1];
    if (!failing) throw new Error('no second host');
    mkdirSync(join(failing.root, 'etc/fixture-fail'), { recursive: true });
    writeFileSync(join(failing.root, 'etc/fixture-fail/kubelet'), 'refused by the test\n');
    try {
      const patch = await lab.icnctl('patch', lab.site, '--profile', `${lab.site}-profile@1.1.0`);
      expect(patch.code).toBe(1);
      expect(patch.stdout).toMatch(/failed at "patching hosts"/);
    } finally {
      rmSync(join(failing.root, 'etc/fixture-fail'), { recursive: true, force: true });
    }
    const [first, second, third] = lab.hosts.hosts;
    // host-1 was patched, then rolled back (the earlier version's install again: a third install); host-2 failed;
    // host-3 was never touched.
    expect(onHost(first!.root, 'opt/kubelet/version')).toBe('1.34.2');
    expect(onHost(first!.root, 'var/lib/fixture/kubelet/install.count')).toBe('3');
    expect(onHost(second!.root, 'opt/kubelet/version')).toBe('1.34.2');
    expect(onHost(third!.root, 'opt/kubelet/version')).toBe('1.34.2');
    expect(onHost(third!.root, 'var/lib/fixture/kubelet/install.count')).toBe('1');
    const status = await siteStatus(lab);
    expect(status).toMatchObject({ phase: 'Ready', installedProfile: { version: '1.0.0' } });
    expect(status.message).toContain('back on');
    const kube = new KubernetesClient(lab.kube.kubeconfig);
    try {
      const nodes = await kube.list('v1', 'Node', { labelSelector: `cluster.x-k8s.io/cluster-name=${lab.site}` });
      expect(nodes.filter((n) => (n.spec as { unschedulable?: boolean }).unschedulable)).toEqual([]);
    } finally {
      kube.close();
    }
  }, 900_000);

  it('a host whose deploy fails: keep-on-failure stops and says where; otherwise the install is undone', async () => {
    const lab = await startLabSite('deployfail', { standIn: { hosts: { 'host-2': 'provisioning' } } });
    labs.push(lab);
    await applyLabSite(lab);
    await lab.startWorker();
    const kube = new KubernetesClient(lab.kube.kubeconfig);
    const hostsOf = () =>
      kube.list('metal3.io/v1alpha1', 'BareMetalHost', { namespace: `site-${lab.site}` }).then((l) => l.length);
    try {
      const kept = await lab.icnctl('install', lab.site, '--keep-on-failure');
      expect(kept.code).toBe(1);
      const keptStatus = await siteStatus(lab);
      expect(keptStatus.phase).toBe('Failed');
      expect(keptStatus.message).toMatch(/stopped at "provisioning hosts".*kept for diagnosis/);
      expect(await hostsOf()).toBe(3);

      const undone = await lab.icnctl('install', lab.site);
      expect(undone.code).toBe(1);
      expect((await siteStatus(lab)).message).toContain('everything it had done was undone');
      expect(await hostsOf()).toBe(0);
      const ironic = new IronicClient({ url: lab.ironic.url });
      for (const host of ['host-1', 'host-3']) {
        // metal3 deprovisions a deleted BareMetalHost and removes its Ironic node.
        const node = await ironic.get(`site-${lab.site}~${host}`).catch(() => undefined);
        expect(node?.provision_state ?? 'gone').not.toBe('active');
      }
    } finally {
      kube.close();
    }
  }, 900_000);
});
