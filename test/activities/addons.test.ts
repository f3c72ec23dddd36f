// Needs: the kubernetes lab peer (kube-apiserver + kwok) as the application cluster, and the helm binary (tools cache).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { createReadStream, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { labUp } from '../../deploy/dev/lab/index.ts';
import type { KubernetesLabInfo } from '../../deploy/dev/lab/kubernetes.ts';
import { ensureGoTool, helm } from '../../deploy/dev/tools.ts';
import { createAddonActivities } from '../../src/activities/addons.ts';
import { HelmClient } from '../../src/clients/helm/index.ts';
import { KubernetesClient } from '../../src/clients/kubernetes/index.ts';
import { ContainerPackage } from '../../src/domain/software-profile.ts';
import type { Store } from '../../src/store/index.ts';
import { labPeer } from '../support/lab.ts';
import { openTestStore } from '../support/store.ts';

const charts = join(import.meta.dirname, '..', 'fixtures', 'charts');
/** A namespace of its own per run (helm creates it; the lab never deletes namespaces). */
const namespace = `kpm-${Date.now().toString(36)}`;
const kubeconfigSecret = 'app-cluster-kubeconfig';

let lab: KubernetesLabInfo;
let store: Store;
let kube: KubernetesClient;
let work: string;
let helmBinary: string;
let activities: ReturnType<typeof createAddonActivities>;
/** Every kubeconfig path the activities handed to helm, to check each was gone afterwards. */
const kubeconfigFiles: string[] = [];
let v1: ContainerPackage;
let v2: ContainerPackage;

async function storeChart(version: string): Promise<string> {
  const packager = new HelmClient({ helmBinary, kubeconfigPath: lab.kubeconfig });
  try {
    const file = await packager.packageChart(join(charts, 'icn-test-app'), work, { version, appVersion: version });
    const sha256 = createHash('sha256').update(readFileSync(file)).digest('hex');
    await store.artifacts.upload(
      { type: 'helm-chart', name: 'icn-test-app', version, sha256, size: statSync(file).size, metadata: {} },
      createReadStream(file),
    );
    return sha256;
  } finally {
    packager.close();
  }
}

beforeAll(async () => {
  await labUp(['kubernetes']);
  lab = labPeer('kubernetes') as KubernetesLabInfo;
  kube = new KubernetesClient(lab.kubeconfig);
  helmBinary = join(ensureGoTool(helm), 'helm');
  work = mkdtempSync(join(tmpdir(), 'icn-kpm-test-'));
  store = await openTestStore('pglite');
  // The lab API server is the application cluster; its kubeconfig goes into the inventory like a fetched one.
  await store.secrets.put({ name: kubeconfigSecret }, 'kubeconfig', {
    kubeconfig: readFileSync(lab.kubeconfig, 'utf8'),
  });
  const node = lab.nodes[0]!;
  v1 = ContainerPackage.parse({
    name: 'test-app',
    version: '0.1.0',
    chart: { sha256: await storeChart('0.1.0') },
    namespace,
    values: { nodeName: node, config: { greeting: 'hello' } },
  });
  v2 = ContainerPackage.parse({
    ...v1,
    version: '0.2.0',
    chart: { sha256: await storeChart('0.2.0') },
    values: { nodeName: node, config: { greeting: 'bonjour' } },
  });
  activities = createAddonActivities({
    helm: (kubeconfigPath) => {
      kubeconfigFiles.push(kubeconfigPath);
      expect(statSync(kubeconfigPath).mode & 0o777).toBe(0o600);
      return new HelmClient({ helmBinary, kubeconfigPath });
    },
    secrets: store.secrets,
    chartPath: (sha256) => store.artifacts.files.pathOf(sha256),
    timeoutSeconds: 120,
    heartbeatIntervalMs: 1000,
  });
}, 900_000);

afterAll(async () => {
  kube.close();
  await store.close();
  rmSync(work, { recursive: true, force: true });
});

const env = () => new MockActivityEnvironment();
async function configData(): Promise<Record<string, string> | undefined> {
  const cm = await kube.find<{
    apiVersion: string;
    kind: string;
    metadata: { name: string };
    data?: Record<string, string>;
  }>({
    apiVersion: 'v1',
    kind: 'ConfigMap',
    namespace,
    name: 'test-app-config',
  });
  return cm?.data;
}

describe('addon activities (KPM) against the lab application cluster', () => {
  it('installs a chart from the artifact store, upgrades, rolls back and uninstalls it', async () => {
    const target = { site: 'site-a', kubeconfigSecret };
    const installed = await env().run(activities.installChart, { ...target, chart: v1 });
    expect(installed).toEqual({ revision: 1 });
    expect(await configData()).toMatchObject({ chartVersion: '0.1.0', greeting: 'hello' });
    const pod = await kube.get({ apiVersion: 'v1', kind: 'Pod', namespace, name: 'test-app-app' });
    expect((pod.status as { phase?: string }).phase).toBe('Running');
    // The same install again (a retry after a lost answer) finds its own revision: no new one.
    expect(await env().run(activities.installChart, { ...target, chart: v1 })).toEqual({ revision: 1 });

    expect(await env().run(activities.installChart, { ...target, chart: v2 })).toEqual({ revision: 2 });
    expect(await configData()).toMatchObject({ chartVersion: '0.2.0', greeting: 'bonjour' });
    expect(await env().run(activities.chartStatus, { ...target, chart: v2 })).toMatchObject({
      revision: 2,
      status: 'deployed',
      chartVersion: '0.2.0',
    });

    expect(await env().run(activities.rollbackChart, { ...target, chart: v2, revision: 1 })).toEqual({ revision: 3 });
    expect(await configData()).toMatchObject({ chartVersion: '0.1.0', greeting: 'hello' });
    // A retried rollback finds its revision deployed.
    expect(await env().run(activities.rollbackChart, { ...target, chart: v2, revision: 1 })).toEqual({ revision: 3 });
    expect(await env().run(activities.chartStatus, { ...target, chart: v1 })).toMatchObject({
      revision: 3,
      chartVersion: '0.1.0',
    });

    await env().run(activities.uninstallChart, { ...target, chart: v1 });
    expect(await env().run(activities.chartStatus, { ...target, chart: v1 })).toBeNull();
    expect(await configData()).toBeUndefined();
    await env().run(activities.uninstallChart, { ...target, chart: v1 });

    // Every kubeconfig file written for helm is gone.
    expect(kubeconfigFiles.length).toBeGreaterThan(0);
    for (const file of kubeconfigFiles) expect(() => statSync(file)).toThrow();
    expect(readdirSync(tmpdir()).filter((f) => f.startsWith('icn-kpm-') && f !== work.split('/').pop())).toEqual([]);
  }, 600_000);

  it('fails for good on a chart that is not in the store, without leaking values', async () => {
    const missing = ContainerPackage.parse({
      ...v1,
      chart: { sha256: 'c'.repeat(64) },
      values: { token: 's3cr3t-value' },
    });
    try {
      await env().run(activities.installChart, { site: 'site-a', kubeconfigSecret, chart: missing });
      throw new Error('expected a failure');
    } catch (err) {
      expect(err).toBeInstanceOf(ApplicationFailure);
      expect((err as ApplicationFailure).nonRetryable).toBe(true);
      expect((err as ApplicationFailure).message).not.toContain('s3cr3t-value');
    }
  });
});
