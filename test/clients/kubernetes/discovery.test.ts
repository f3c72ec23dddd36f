// Needs: the kubernetes lab peer (etcd + kube-apiserver + kwok, with the Cluster-API and metal3 CRDs).
import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { labUp } from '../../../deploy/dev/lab/index.ts';
import type { KubernetesLabInfo } from '../../../deploy/dev/lab/kubernetes.ts';
import { Discovery } from '../../../src/clients/kubernetes/discovery.ts';
import { KubeTransport } from '../../../src/clients/kubernetes/transport.ts';
import { labPeer } from '../../support/lab.ts';

let transport: KubeTransport;

beforeAll(async () => {
  await labUp(['kubernetes']);
  transport = new KubeTransport((labPeer('kubernetes') as KubernetesLabInfo).kubeconfig);
}, 900_000);

afterAll(() => {
  transport.dropConnections();
});

interface ServedResource {
  name: string;
  kind: string;
  namespaced: boolean;
}

describe('discovery', () => {
  it('resolves the core kinds a site operation uses without asking the API server', async () => {
    const discovery = new Discovery(transport);
    const requests = jest.spyOn(transport, 'request');
    try {
      expect(await discovery.path({ apiVersion: 'v1', kind: 'Node', name: 'edge-1' })).toBe('/api/v1/nodes/edge-1');
      expect(await discovery.path({ apiVersion: 'v1', kind: 'Pod', namespace: 'kube-system' })).toBe(
        '/api/v1/namespaces/kube-system/pods',
      );
      expect(await discovery.path({ apiVersion: 'v1', kind: 'Secret', namespace: 'site-a', name: 'kc' })).toBe(
        '/api/v1/namespaces/site-a/secrets/kc',
      );
      expect(requests).not.toHaveBeenCalled();
      // Other groups are looked up (and cached) as before.
      expect(await discovery.path({ apiVersion: 'metal3.io/v1alpha1', kind: 'BareMetalHost', namespace: 'n' })).toBe(
        '/apis/metal3.io/v1alpha1/namespaces/n/baremetalhosts',
      );
      expect(requests).toHaveBeenCalledTimes(1);
    } finally {
      requests.mockRestore();
    }
  });

  it('resolves every core kind as the real API server serves it', async () => {
    const served = await transport.request<{ resources: ServedResource[] }>({
      method: 'GET',
      path: '/api/v1',
      what: 'discover v1',
    });
    const kinds = served.resources.filter((r) => !r.name.includes('/'));
    expect(kinds.length).toBeGreaterThan(10);
    const discovery = new Discovery(transport);
    for (const r of kinds) {
      expect({ kind: r.kind, ...(await discovery.resource('v1', r.kind)) }).toEqual({
        kind: r.kind,
        base: '/api/v1',
        plural: r.name,
        namespaced: r.namespaced,
      });
    }
  });
});
