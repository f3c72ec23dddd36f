/**
 * The CRDs the orchestrator's Cluster-API path writes: Cluster-API's own, read from its Go module zip at a pinned
 * version (the generated files, exactly as upstream ships them), and metal3's from crds/metal3.yaml (see its header
 * for why those are the project's own).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { go } from '../../tools.ts';
import type { KubeObject } from '../../../../src/clients/kubernetes/index.ts';

export const clusterApi = { module: 'sigs.k8s.io/cluster-api', version: 'v1.9.6' };

const clusterApiFiles = [
  'config/crd/bases/cluster.x-k8s.io_clusters.yaml',
  'config/crd/bases/cluster.x-k8s.io_machines.yaml',
  'config/crd/bases/cluster.x-k8s.io_machinesets.yaml',
  'config/crd/bases/cluster.x-k8s.io_machinedeployments.yaml',
  'controlplane/kubeadm/config/crd/bases/controlplane.cluster.x-k8s.io_kubeadmcontrolplanes.yaml',
  'bootstrap/kubeadm/config/crd/bases/bootstrap.cluster.x-k8s.io_kubeadmconfigs.yaml',
  'bootstrap/kubeadm/config/crd/bases/bootstrap.cluster.x-k8s.io_kubeadmconfigtemplates.yaml',
];

export const metal3CrdsFile = join(import.meta.dirname, 'crds', 'metal3.yaml');

/** The folder of a module version in Go's module cache, downloading it if needed. */
export function goModuleDir(module: string, version: string): string {
  const out = go(['mod', 'download', '-json', `${module}@${version}`], { env: process.env, cwd: import.meta.dirname });
  const info = JSON.parse(out) as { Dir?: string; Error?: string };
  if (info.Dir === undefined) throw new Error(`go mod download ${module}@${version}: ${info.Error ?? 'no Dir'}`);
  return info.Dir;
}

function documents(file: string): KubeObject[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((doc) => doc.toJS() as KubeObject | null)
    .filter((doc): doc is KubeObject => doc !== null);
}

export function labCrds(): KubeObject[] {
  const dir = goModuleDir(clusterApi.module, clusterApi.version);
  return [...clusterApiFiles.flatMap((f) => documents(join(dir, f))), ...documents(metal3CrdsFile)];
}
