/**
 * Cluster bring-up without Cluster-API: the packages (kubeadm, kubelet, a container runtime) on every host, then
 * `kubeadm init` on the first control-plane host, `kubeadm join` on the other control-plane hosts and then the
 * workers, one after another, and the admin kubeconfig kept in the BPA's data folder. Each step is recorded when
 * done and each is a no-op on a host that has done it already (kubeadm's own files tell), so a resumed bring-up
 * picks up where it stopped.
 */
import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PeerError } from '../clients/errors.ts';
import type { SshClient } from '../clients/ssh/index.ts';
import type { BpaHost, ClusterSpecParsed } from '../domain/bpa.ts';
import type { BinaryPackage } from '../domain/software-profile.ts';
import type { Logger } from '../observability/logger.ts';
import { shellQuote } from './host-script.ts';
import type { SshPool } from './secrets.ts';

export interface ClusterContext {
  jobId: string;
  ssh: SshPool;
  logger: Pick<Logger, 'info'>;
  commandTimeoutMs: number;
  /** Steps already done (replayed from the journal on a resume). */
  steps: string[];
  installPackages: (packages: BinaryPackage[], parallelism: number | undefined) => Promise<void>;
  onHost: <T>(host: BpaHost, run: () => Promise<T>) => Promise<T>;
  stepDone: (step: string) => void;
  dataDir: string;
}

/** kubeadm where its package put it: HOST_ROOT is set on the lab's simulated hosts only. */
const kubeadm = '"${HOST_ROOT:-}/usr/bin/kubeadm"';
const kubeDir = '"${HOST_ROOT:-}/etc/kubernetes"';

export function kubeconfigPath(dataDir: string, cluster: string): string {
  return join(dataDir, 'clusters', cluster, 'kubeconfig');
}

/** Words of a join command as kubeadm prints it; anything that is not a plain flag or value is refused. */
export function joinArguments(printed: string): string[] {
  const line = printed
    .split('\n')
    .map((l) => l.trim())
    .find((l) => l.startsWith('kubeadm join '));
  if (line === undefined) throw new Error(`kubeadm printed no join command: ${printed.slice(0, 300)}`);
  const words = line.split(/\s+/).slice(2);
  for (const w of words) {
    if (!/^[A-Za-z0-9._:/=@-]+$/.test(w)) throw new Error(`unexpected word in kubeadm's join command: ${w}`);
  }
  return words;
}

async function run(ssh: SshClient, host: BpaHost, script: string, timeoutMs: number): Promise<string> {
  const result = await ssh.exec({ host: host.address, port: host.port }, script, { timeoutMs });
  if (result.exitCode !== 0) {
    throw new PeerError(
      'bpa',
      `host ${host.name}: ${script.split('\n')[0] ?? ''} exited ${result.exitCode ?? result.signal ?? '?'}: ${(result.stderr.trim() || result.stdout.trim()).slice(-1000)}`,
      { retryable: false, reason: 'KubeadmFailed' },
    );
  }
  return result.stdout;
}

export async function runCluster(ctx: ClusterContext, spec: ClusterSpecParsed): Promise<void> {
  const done = (step: string) => ctx.steps.includes(step);
  const sshOf = (host: BpaHost) => ctx.ssh.client(host.keyRef.name, host.user);
  const controlPlanes = spec.hosts.filter((h) => h.role === 'control-plane');
  const workers = spec.hosts.filter((h) => h.role === 'worker');
  const first = controlPlanes[0];
  if (!first) throw new Error('the cluster has no control-plane host');
  const endpoint = `${spec.controlPlaneEndpoint.host}:${spec.controlPlaneEndpoint.port}`;
  const t = ctx.commandTimeoutMs;

  if (!done('packages')) {
    await ctx.installPackages(spec.packages, spec.parallelism);
    ctx.stepDone('packages');
  }

  const init = `init ${first.name}`;
  if (!done(init)) {
    const ssh = await sshOf(first);
    const args = [
      `--kubernetes-version=${spec.kubernetesVersion}`,
      `--control-plane-endpoint=${endpoint}`,
      `--pod-network-cidr=${spec.podCidr}`,
      `--service-cidr=${spec.serviceCidr}`,
      `--node-name=${first.name}`,
    ];
    await ctx.onHost(first, () =>
      run(
        ssh,
        first,
        `if [ -f ${kubeDir}/admin.conf ]; then echo "already initialised"; exit 0; fi\n` +
          `${kubeadm} init ${args.map(shellQuote).join(' ')}`,
        t,
      ),
    );
    ctx.stepDone(init);
  }

  // Joins go one by one: control-plane hosts first (etcd grows one member at a time), then the workers.
  for (const host of [...controlPlanes.slice(1), ...workers]) {
    const step = `join ${host.name}`;
    if (done(step)) continue;
    const firstSsh = await sshOf(first);
    const joinWords = joinArguments(
      await ctx.onHost(first, () => run(firstSsh, first, `${kubeadm} token create --print-join-command`, t)),
    );
    const extra: string[] = [`--node-name=${host.name}`];
    if (host.role === 'control-plane') {
      const printed = await ctx.onHost(first, () =>
        run(firstSsh, first, `${kubeadm} init phase upload-certs --upload-certs`, t),
      );
      const key = printed.trim().split('\n').at(-1)?.trim() ?? '';
      if (!/^[a-f0-9]{64}$/.test(key)) throw new Error(`kubeadm printed no certificate key on ${first.name}`);
      extra.push('--control-plane', `--certificate-key=${key}`);
    }
    const ssh = await sshOf(host);
    await ctx.onHost(host, () =>
      run(
        ssh,
        host,
        `if [ -f ${kubeDir}/kubelet.conf ]; then echo "already joined"; exit 0; fi\n` +
          `${kubeadm} join ${[...joinWords, ...extra].map(shellQuote).join(' ')}`,
        t,
      ),
    );
    ctx.stepDone(step);
  }

  if (!done('kubeconfig')) {
    const ssh = await sshOf(first);
    const kubeconfig = await ctx.onHost(first, () => run(ssh, first, `cat ${kubeDir}/admin.conf`, t));
    const path = kubeconfigPath(ctx.dataDir, spec.name);
    await mkdir(join(ctx.dataDir, 'clusters', spec.name), { recursive: true, mode: 0o700 });
    await writeFile(`${path}.tmp`, kubeconfig, { mode: 0o600 });
    await chmod(`${path}.tmp`, 0o600);
    await rename(`${path}.tmp`, path);
    ctx.stepDone('kubeconfig');
  }
  ctx.logger.info({ jobId: ctx.jobId, cluster: spec.name }, 'cluster is up');
}
