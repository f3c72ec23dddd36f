/**
 * The `kubernetes` lab peer: a real Kubernetes API (etcd + kube-apiserver over TLS, RBAC, an admin client
 * certificate), the Cluster-API and metal3 CRDs, and kwok so that Node objects become Ready and pods with a nodeName
 * become Running. No scheduler or controller-manager runs: controllers' effects are the tests' stand-ins' job.
 * A cold start begins from empty storage; a warm `up` returns the running peer's info.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { KubernetesClient, type KubeObject } from '../../../src/clients/kubernetes/index.ts';
import { ensureGoTool, etcd, kubeApiserver, kwok } from '../tools.ts';
import { ensureDebianPackages } from './debian.ts';
import { clusterApi, labCrds } from './kubernetes/crds.ts';
import { withLock } from './kubernetes/lock.ts';
import { ensurePki, type Pki } from './kubernetes/pki.ts';
import type { LabContext, LabPeer } from './peer.ts';
import { freePort, readPid, startDetached, stopPid, waitUntil } from './processes.ts';

export interface KubernetesLabInfo {
  /** One kubeconfig (certificates embedded) for @kubernetes/client-node, helm and kubectl. */
  kubeconfig: string;
  server: string;
  /** Fake nodes kwok keeps Ready; set a pod's nodeName to one of them and kwok runs it. */
  nodes: string[];
  versions: { kubernetes: string; etcd: string; kwok: string; clusterApi: string; metal3: string };
}

const labNodes = ['lab-node-0', 'lab-node-1', 'lab-node-2'];
const processes = ['kwok', 'kube-apiserver', 'etcd'] as const;

function files(dataDir: string) {
  return {
    pki: join(dataDir, 'pki'),
    etcdData: join(dataDir, 'etcd'),
    kubeconfig: join(dataDir, 'kubeconfig'),
    kwokConfig: join(dataDir, 'kwok.yaml'),
    state: join(dataDir, 'peer.json'),
    pid: (name: (typeof processes)[number]) => join(dataDir, `${name}.pid`),
    log: (name: (typeof processes)[number]) => join(dataDir, `${name}.log`),
  };
}

function writeKubeconfig(path: string, server: string, pki: Pki): void {
  const b64 = (file: string): string => readFileSync(file).toString('base64');
  const config = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'icn-lab', cluster: { server, 'certificate-authority-data': b64(pki.caCert) } }],
    users: [
      {
        name: 'icn-lab-admin',
        user: { 'client-certificate-data': b64(pki.adminCert), 'client-key-data': b64(pki.adminKey) },
      },
    ],
    contexts: [{ name: 'icn-lab', context: { cluster: 'icn-lab', user: 'icn-lab-admin', namespace: 'default' } }],
    'current-context': 'icn-lab',
  };
  // helm warns about (and some tools refuse) a group- or world-readable kubeconfig.
  writeFileSync(path, stringify(config), { mode: 0o600 });
}

function etcdVersion(etcdBin: string): string {
  const out = execFileSync(etcdBin, ['--version'], { encoding: 'utf8' });
  return /etcd Version: (\S+)/.exec(out)?.[1] ?? 'unknown';
}

async function running(ctx: LabContext): Promise<KubernetesLabInfo | undefined> {
  const f = files(ctx.dataDir);
  if (!processes.every((p) => readPid(f.pid(p)) !== undefined) || !existsSync(f.state)) return undefined;
  const info = JSON.parse(readFileSync(f.state, 'utf8')) as KubernetesLabInfo;
  const client = new KubernetesClient(info.kubeconfig);
  try {
    return (await client.ready()) ? info : undefined;
  } finally {
    client.close();
  }
}

async function start(ctx: LabContext): Promise<KubernetesLabInfo> {
  const reused = await running(ctx);
  if (reused) {
    ctx.log(`reusing the running API server at ${reused.server}`);
    return reused;
  }
  await stop(ctx);
  const f = files(ctx.dataDir);
  ensureDebianPackages(['openssl'], ctx.log);
  const etcdBin = join(ensureGoTool(etcd), 'etcd');
  const apiserverBin = join(ensureGoTool(kubeApiserver), 'kube-apiserver');
  const kwokBin = join(ensureGoTool(kwok), 'kwok');
  const pki = ensurePki(f.pki);

  // Empty storage on every cold start: tests and demos begin from a known state.
  rmSync(f.etcdData, { recursive: true, force: true });
  const [etcdClientPort, etcdPeerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
  const etcdUrl = `http://127.0.0.1:${etcdClientPort}`;
  const peerUrl = `http://127.0.0.1:${etcdPeerPort}`;
  startDetached(
    etcdBin,
    [
      '--name=lab',
      `--data-dir=${f.etcdData}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=${peerUrl}`,
      `--initial-advertise-peer-urls=${peerUrl}`,
      `--initial-cluster=lab=${peerUrl}`,
      '--initial-cluster-state=new',
      '--quota-backend-bytes=8589934592',
      // Storage is thrown away on every cold start: durability would only cost the tests time on a shared disk.
      '--unsafe-no-fsync',
      '--logger=zap',
      '--log-level=warn',
    ],
    { pidFile: f.pid('etcd'), logFile: f.log('etcd') },
  );
  await waitUntil(
    `etcd on ${etcdUrl} (log: ${f.log('etcd')})`,
    async () => ((await (await fetch(`${etcdUrl}/health`)).json()) as { health?: string }).health === 'true',
    30_000,
  );

  const server = `https://127.0.0.1:${apiPort}`;
  writeKubeconfig(f.kubeconfig, server, pki);
  startDetached(
    apiserverBin,
    [
      `--etcd-servers=${etcdUrl}`,
      '--bind-address=127.0.0.1',
      '--advertise-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--tls-cert-file=${pki.serverCert}`,
      `--tls-private-key-file=${pki.serverKey}`,
      `--client-ca-file=${pki.caCert}`,
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${pki.serviceAccountPub}`,
      `--service-account-signing-key-file=${pki.serviceAccountKey}`,
      '--service-cluster-ip-range=10.96.0.0/16',
      '--authorization-mode=RBAC',
      // ServiceAccount admission needs the token controller (controller-manager) for every new namespace.
      '--disable-admission-plugins=ServiceAccount',
      '--allow-privileged=true',
      '--profiling=false',
      // The default reconciler would publish 127.0.0.1 as the kubernetes Service's endpoint, which validation refuses.
      '--endpoint-reconciler-type=none',
    ],
    { pidFile: f.pid('kube-apiserver'), logFile: f.log('kube-apiserver') },
  );
  const client = new KubernetesClient(f.kubeconfig);
  try {
    const apiserver = { exited: false };
    await waitUntil(
      `kube-apiserver on ${server} /readyz (log: ${f.log('kube-apiserver')})`,
      async () => (apiserver.exited = readPid(f.pid('kube-apiserver')) === undefined) || client.ready(),
      90_000,
    );
    if (apiserver.exited) throw new Error(`kube-apiserver exited while starting: ${tail(f.log('kube-apiserver'))}`);
    const { gitVersion } = await client.version();

    await client.apply({
      apiVersion: 'v1',
      kind: 'ServiceAccount',
      metadata: { name: 'default', namespace: 'default' },
    });
    const crds = labCrds();
    await Promise.all(crds.map((crd) => client.apply(crd)));
    await Promise.all(
      crds.map((crd) =>
        client.waitForCondition(
          { apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name: crd.metadata.name },
          'Established',
          { timeoutMs: 60_000 },
        ),
      ),
    );

    // No Stage objects in this config: kwok v0.7.0 then uses its built-in stages (node Ready, pod Running).
    writeFileSync(f.kwokConfig, 'apiVersion: config.kwok.x-k8s.io/v1alpha1\nkind: KwokConfiguration\noptions: {}\n');
    startDetached(
      kwokBin,
      ['--kubeconfig', f.kubeconfig, '-c', f.kwokConfig, '--manage-all-nodes=true', '--node-lease-duration-seconds=40'],
      {
        pidFile: f.pid('kwok'),
        logFile: f.log('kwok'),
      },
    );
    await Promise.all(labNodes.map((name) => client.apply(fakeNode(name))));
    await Promise.all(
      labNodes.map((name) =>
        client.waitForCondition({ apiVersion: 'v1', kind: 'Node', name }, 'Ready', {
          timeoutMs: 60_000,
          description: `Ready through kwok (log: ${f.log('kwok')})`,
        }),
      ),
    );

    const info: KubernetesLabInfo = {
      kubeconfig: f.kubeconfig,
      server,
      nodes: labNodes,
      versions: {
        kubernetes: gitVersion,
        etcd: etcdVersion(etcdBin),
        kwok: kwok.version,
        clusterApi: clusterApi.version,
        metal3: 'lab CRDs (deploy/dev/lab/kubernetes/crds/metal3.yaml)',
      },
    };
    writeFileSync(f.state, JSON.stringify(info, null, 2));
    return info;
  } finally {
    client.close();
  }
}

/**
 * A node as kwok's docs describe one: the annotation marks it fake, capacity lets pods fit. The Cluster-API stand-in
 * makes its cluster's nodes with this too, adding its own labels and a kubelet version.
 */
export function fakeNode(
  name: string,
  extra: { labels?: Record<string, string>; kubeletVersion?: string } = {},
): KubeObject {
  const resources = { cpu: '32', memory: '256Gi', pods: '110', 'ephemeral-storage': '1Ti' };
  return {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name,
      annotations: { 'kwok.x-k8s.io/node': 'fake', 'node.alpha.kubernetes.io/ttl': '0' },
      labels: {
        'kubernetes.io/hostname': name,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': 'amd64',
        type: 'kwok',
        ...extra.labels,
      },
    },
    status: {
      capacity: resources,
      allocatable: resources,
      ...(extra.kubeletVersion !== undefined && { nodeInfo: { kubeletVersion: extra.kubeletVersion } }),
    },
  };
}

function tail(file: string): string {
  if (!existsSync(file)) return '(no log)';
  return readFileSync(file, 'utf8').trim().split('\n').slice(-5).join('\n');
}

async function stop(ctx: LabContext): Promise<void> {
  const f = files(ctx.dataDir);
  for (const p of processes) await stopPid(f.pid(p));
  rmSync(f.state, { force: true });
}

// A cold start may include building the tools (minutes): a second caller waits for it, then reuses the result.
const up = (ctx: LabContext): Promise<KubernetesLabInfo> =>
  withLock(ctx.dataDir, 'kubernetes lab up', 30 * 60_000, () => start(ctx));
const down = (ctx: LabContext): Promise<void> =>
  withLock(ctx.dataDir, 'kubernetes lab down', 30 * 60_000, () => stop(ctx));

export const kubernetesPeer: LabPeer<KubernetesLabInfo> = { name: 'kubernetes', up, down };
