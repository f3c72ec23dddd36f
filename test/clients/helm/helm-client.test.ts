// Needs: the kubernetes lab peer (etcd + kube-apiserver + kwok) and the helm binary (tools cache).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { ApiException, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labUp } from '../../../deploy/dev/lab/index.ts';
import type { KubernetesLabInfo } from '../../../deploy/dev/lab/kubernetes.ts';
import { ensureGoTool, helm } from '../../../deploy/dev/tools.ts';
import { PeerError } from '../../../src/clients/errors.ts';
import { HelmClient } from '../../../src/clients/helm/index.ts';
import { labPeer } from '../../support/lab.ts';

const charts = join(import.meta.dirname, '..', '..', 'fixtures', 'charts');
/** A namespace of its own per run, created by helm (--create-namespace); never deleted (no namespace controller). */
const namespace = `helm-test-${Date.now().toString(36)}`;
const release = 'app';

let lab: KubernetesLabInfo;
let core: CoreV1Api;
let client: HelmClient;
let work: string;
let helmHome: string;
let chartV1: string;
let chartV2: string;
let node: string;

beforeAll(async () => {
  // Idempotent: reuses a running lab (the global setup's), else brings it up and names its error.
  await labUp(['kubernetes']);
  lab = labPeer('kubernetes') as KubernetesLabInfo;
  node = lab.nodes[0]!;
  const kc = new KubeConfig();
  kc.loadFromFile(lab.kubeconfig);
  core = kc.makeApiClient(CoreV1Api);
  work = mkdtempSync(join(tmpdir(), 'icn-helm-test-'));
  helmHome = join(work, 'helm-home');
  client = new HelmClient({
    helmBinary: join(ensureGoTool(helm), 'helm'),
    kubeconfigPath: lab.kubeconfig,
    homeDir: helmHome,
  });
  chartV1 = await client.packageChart(join(charts, 'icn-test-app'), work, { version: '0.1.0', appVersion: '1.0.0' });
  chartV2 = await client.packageChart(join(charts, 'icn-test-app'), work, { version: '0.2.0', appVersion: '2.0.0' });
}, 900_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

async function configMapData(name: string): Promise<Record<string, string> | undefined> {
  try {
    return (await core.readNamespacedConfigMap({ name, namespace })).data ?? {};
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) return undefined;
    throw err;
  }
}

async function podExists(name: string): Promise<boolean> {
  try {
    await core.readNamespacedPod({ name, namespace });
    return true;
  } catch (err) {
    if (err instanceof ApiException && err.code === 404) return false;
    throw err;
  }
}

async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function failure(promise: Promise<unknown>): Promise<PeerError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(PeerError);
    return err as PeerError;
  }
  throw new Error('expected a PeerError, but the call succeeded');
}

/** No values file outlives its call. */
function valuesFilesLeft(): string[] {
  return readdirSync(helmHome).filter((f) => f.startsWith('values-'));
}

describe('HelmClient against the lab Kubernetes API', () => {
  it('reports the version it was built with', async () => {
    expect(await client.version()).toBe(helm.version);
  });

  it('installs a packaged chart: revision 1, the Pod Running on its node, the ConfigMap from the values', async () => {
    const status = await client.installOrUpgrade({
      release,
      namespace,
      chart: chartV1,
      values: { nodeName: node, config: { greeting: 'hello', replicas: 1 } },
      atomic: true,
      wait: true,
      timeoutSeconds: 60,
    });
    expect(status).toMatchObject({
      name: release,
      namespace,
      revision: 1,
      status: 'deployed',
      chartName: 'icn-test-app',
      chartVersion: '0.1.0',
      appVersion: '1.0.0',
    });
    // --wait returned only once the Pod was Ready: kwok, playing the node's kubelet, ran it.
    const pod = await core.readNamespacedPod({ name: `${release}-app`, namespace });
    expect(pod.spec?.nodeName).toBe(node);
    expect(pod.status?.phase).toBe('Running');
    expect(pod.status?.conditions?.find((c) => c.type === 'Ready')?.status).toBe('True');
    expect(await configMapData(`${release}-config`)).toEqual({
      chartVersion: '0.1.0',
      greeting: 'hello',
      replicas: '1',
    });
    expect(valuesFilesLeft()).toEqual([]);
  });

  it('upgrades to another chart version with other values: revision 2, the ConfigMap changed', async () => {
    const status = await client.installOrUpgrade({
      release,
      namespace,
      chart: chartV2,
      // "yes" stays a string: helm reads values as YAML 1.1, where an unquoted yes is a boolean.
      values: { nodeName: node, config: { greeting: 'bonjour', mode: 'upgraded', answer: 'yes' } },
      wait: true,
      timeoutSeconds: 60,
    });
    expect(status).toMatchObject({ revision: 2, status: 'deployed', chartVersion: '0.2.0', appVersion: '2.0.0' });
    // The values replace the previous ones (--reset-values): "replicas" is gone.
    expect(await configMapData(`${release}-config`)).toEqual({
      chartVersion: '0.2.0',
      greeting: 'bonjour',
      mode: 'upgraded',
      answer: 'yes',
    });
    const pod = await core.readNamespacedPod({ name: `${release}-app`, namespace });
    expect(pod.metadata?.labels?.['helm.sh/chart']).toBe('icn-test-app-0.2.0');
  });

  it('rolls back to revision 1: a new revision 3 with revision 1 content', async () => {
    const status = await client.rollback({ release, namespace, revision: 1, wait: true, timeoutSeconds: 60 });
    expect(status).toMatchObject({ revision: 3, status: 'deployed', chartVersion: '0.1.0', appVersion: '1.0.0' });
    expect(await configMapData(`${release}-config`)).toEqual({
      chartVersion: '0.1.0',
      greeting: 'hello',
      replicas: '1',
    });
  });

  it('reads status and history', async () => {
    expect(await client.status(release, namespace)).toMatchObject({
      revision: 3,
      status: 'deployed',
      chartName: 'icn-test-app',
      chartVersion: '0.1.0',
    });
    const history = await client.history(release, namespace);
    expect(history.map((h) => [h.revision, h.status, h.chart, h.appVersion])).toEqual([
      [1, 'superseded', 'icn-test-app-0.1.0', '1.0.0'],
      [2, 'superseded', 'icn-test-app-0.2.0', '2.0.0'],
      [3, 'deployed', 'icn-test-app-0.1.0', '1.0.0'],
    ]);
    expect(history[2]?.description).toBe('Rollback to 1');
    expect((await client.history(release, namespace, 1)).map((h) => h.revision)).toEqual([3]);
  });

  it('uninstalls: the objects are gone, and uninstalling again is fine', async () => {
    expect(await client.uninstall({ release, namespace, wait: true, timeoutSeconds: 60 })).toEqual({ existed: true });
    await eventually(async () => !(await podExists(`${release}-app`)), 'the Pod is deleted');
    expect(await configMapData(`${release}-config`)).toBeUndefined();
    expect(await client.findRelease(release, namespace)).toBeUndefined();
    const missing = await failure(client.status(release, namespace));
    expect(missing).toMatchObject({ peer: 'helm', reason: 'NotFound', retryable: false });
    expect(await client.uninstall({ release, namespace })).toEqual({ existed: false });
  });

  it("fails a broken chart at once (not retryable) with helm's own message", async () => {
    const err = await failure(
      client.installOrUpgrade({ release: 'broken', namespace, chart: join(charts, 'broken'), values: { value: 'x' } }),
    );
    expect(err).toMatchObject({ peer: 'helm', retryable: false, reason: 'InvalidChart' });
    expect(err.message).toContain('function "noSuchTemplateFunction" not defined');
    expect(err.message).toContain('"broken"');
    expect(err.message).toContain(namespace);
    expect(await client.findRelease('broken', namespace)).toBeUndefined();
  });

  it('never shows a value: not in the arguments, not in the error the API server echoes it in', async () => {
    const secret = `tok!${Math.random().toString(36).slice(2)}Zq`;
    // A wrapper that records helm's arguments and the values file's mode while helm runs, then runs helm.
    const log = join(work, 'argv.log');
    const wrapper = join(work, 'helm-wrapper.sh');
    writeFileSync(
      wrapper,
      [
        '#!/bin/sh',
        `printf '%s\\n' "$*" >> '${log}'`,
        'prev=""',
        'for a in "$@"; do',
        `  if [ "$prev" = "--values" ]; then stat -c 'mode=%a' "$a" >> '${log}'; fi`,
        '  prev="$a"',
        'done',
        `exec '${join(ensureGoTool(helm), 'helm')}' "$@"`,
      ].join('\n'),
    );
    chmodSync(wrapper, 0o755);
    const wrapped = new HelmClient({ helmBinary: wrapper, kubeconfigPath: lab.kubeconfig, homeDir: helmHome });
    // A label value with "!" is invalid: the API server rejects the Pod and quotes the value in its message.
    const err = await failure(
      wrapped.installOrUpgrade({
        release: 'leak',
        namespace,
        chart: chartV1,
        values: { nodeName: node, podLabels: { token: secret }, config: { password: secret } },
        atomic: true,
        timeoutSeconds: 60,
      }),
    );
    expect(err).toMatchObject({ peer: 'helm', retryable: false, reason: 'InvalidChart' });
    expect(err.message).toContain('Invalid value: "***"');
    expect(err.message).not.toContain(secret);
    expect(JSON.stringify(err)).not.toContain(secret);
    expect(String(err.stack)).not.toContain(secret);
    const recorded = readFileSync(log, 'utf8');
    expect(recorded).toContain('--values');
    expect(recorded).toContain('mode=600');
    expect(recorded).not.toContain(secret);
    expect(recorded).not.toContain('--set');
    expect(valuesFilesLeft()).toEqual([]);
    // --atomic removed the failed first install.
    expect(await client.findRelease('leak', namespace)).toBeUndefined();
    expect(await configMapData('leak-config')).toBeUndefined();
  });

  it('a release busy with another operation is retryable; so is a wait that runs out of time', async () => {
    // No node of this name exists: the Pod stays Pending and helm's --wait holds the release pending-install.
    const slow = client.installOrUpgrade({
      release: 'busy',
      namespace,
      chart: chartV1,
      values: { nodeName: 'no-such-node' },
      wait: true,
      timeoutSeconds: 15,
    });
    const slowOutcome = slow.then(
      () => undefined,
      (err: unknown) => err,
    );
    await eventually(
      async () => (await client.findRelease('busy', namespace))?.status === 'pending-install',
      'the release is pending-install',
    );
    const busy = await failure(
      client.installOrUpgrade({ release: 'busy', namespace, chart: chartV1, values: { nodeName: node } }),
    );
    expect(busy).toMatchObject({ peer: 'helm', retryable: true, reason: 'OperationInProgress' });
    expect(busy.message).toContain('another operation (install/upgrade/rollback) is in progress');

    const timedOut = await slowOutcome;
    expect(timedOut).toBeInstanceOf(PeerError);
    expect(timedOut).toMatchObject({ peer: 'helm', retryable: true, reason: 'Timeout' });
    expect((await client.status('busy', namespace)).status).toBe('failed');
    expect(await client.uninstall({ release: 'busy', namespace })).toEqual({ existed: true });
    // helm asked for the Pod's deletion; with no kubelet (kwok) for its node, nothing confirms it, so it lingers
    // marked for deletion until removed without grace.
    const pod = await core.readNamespacedPod({ name: 'busy-app', namespace });
    expect(pod.metadata?.deletionTimestamp).toBeDefined();
    await core.deleteNamespacedPod({ name: 'busy-app', namespace, gracePeriodSeconds: 0 });
    await eventually(async () => !(await podExists('busy-app')), 'the Pending Pod is deleted');
  }, 120_000);
});
