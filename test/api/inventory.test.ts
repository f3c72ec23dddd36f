// Needs: PGlite (embedded) and the machine's PostgreSQL (lab peer "postgres"): the same API tests on both.
import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Store } from '../../src/store/index.ts';
import { bearer, buildTestApi, tokens } from '../support/api.ts';
import { type Backend, openTestStore } from '../support/store.ts';

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const image = Buffer.from('ubuntu 24.04 edge image');
const kubelet = Buffer.from('#!/bin/sh\necho kubelet\n');

const profile = {
  apiVersion: 'icn.akraino.org/v1alpha1',
  kind: 'SoftwareProfile',
  metadata: { name: 'edge-base' },
  spec: {
    version: '1.0.0',
    osImage: { sha256: sha(image) },
    binaryPackages: [
      { name: 'kubelet', version: '1.34.2', artifact: { sha256: sha(kubelet) }, install: 'sh i', verify: 'sh v' },
    ],
  },
};

const site = (name: string, labels: Record<string, string>) => ({
  apiVersion: 'icn.akraino.org/v1alpha1',
  kind: 'Site',
  metadata: { name, labels },
  spec: {
    endpoints: { ironicUrl: 'http://10.0.0.2:6385', bpaUrl: 'http://10.0.0.2:9015' },
    cluster: { kubernetesVersion: 'v1.34.2', controlPlaneEndpoint: { host: '10.1.0.100' } },
    softwareProfile: { name: 'edge-base', version: '1.0.0' },
    hosts: [
      {
        name: 'cp-1',
        role: 'control-plane',
        bmc: { address: 'redfish://10.0.0.11/redfish/v1/Systems/1', credentialsRef: { name: 'bmc' } },
        bootMacAddress: '52:54:00:00:00:11',
        ssh: { address: '10.1.0.11', keyRef: { name: 'ssh' } },
      },
    ],
  },
});

describe.each<Backend>(['pglite', 'postgres'])('inventory API on %s', (backend) => {
  let store: Store;
  let api: Awaited<ReturnType<typeof buildTestApi>>;
  beforeAll(async () => {
    store = await openTestStore(backend);
    api = await buildTestApi({ store });
  });
  afterAll(async () => {
    await api.close();
    await store.close();
  });

  const upload = (body: Buffer, q: Record<string, string>, token = tokens.writer) =>
    api.inject({
      method: 'POST',
      url: `/v1/artifacts?${new URLSearchParams({ sha256: sha(body), size: String(body.length), version: '1.0.0', ...q }).toString()}`,
      headers: { ...bearer(token), 'content-type': 'application/octet-stream' },
      payload: body,
    });

  it('answers an upload whose size is unlike its Content-Length with 400, over real HTTP, never a reset', async () => {
    // Its own listening API: inject() cannot show what a client sees while it still sends the body.
    const listening = await buildTestApi({ store });
    const url = await listening.listen({ host: '127.0.0.1', port: 0 });
    try {
      // Bodies of megabytes declared a byte long: the answer is ready long before the body is all sent.
      for (const mib of [1, 4, 16]) {
        for (let i = 0; i < 5; i++) {
          const body = Buffer.alloc(mib * 2 ** 20, i);
          const q = new URLSearchParams({ type: 'binary-package', name: 'probe-early', version: '1.0.0', size: '1' });
          q.set('sha256', sha(body));
          const res = await fetch(`${url}/v1/artifacts?${q.toString()}`, {
            method: 'POST',
            headers: { ...bearer(tokens.writer), 'content-type': 'application/octet-stream' },
            body,
          });
          expect(res.status).toBe(400);
          expect(await res.json()).toMatchObject({
            field: 'size',
            message: `Content-Length ${body.length} differs from size 1`,
          });
        }
      }
    } finally {
      await listening.close();
    }
    expect(await store.artifacts.list({ name: 'probe-early' })).toEqual([]);
  });

  it('refuses a profile whose artifacts are not uploaded, then accepts it once they are', async () => {
    const early = await api.inject({
      method: 'POST',
      url: '/v1/profiles',
      headers: bearer(tokens.writer),
      payload: profile,
    });
    expect(early.statusCode).toBe(422);
    expect(early.json()).toMatchObject({ error: 'MissingReference', field: 'spec' });

    expect((await upload(image, { type: 'os-image', name: 'ubuntu' }, tokens.reader)).statusCode).toBe(403);
    expect((await upload(image, { type: 'os-image', name: 'ubuntu' })).statusCode).toBe(201);
    expect((await upload(kubelet, { type: 'binary-package', name: 'kubelet', version: '1.34.2' })).statusCode).toBe(
      201,
    );
    expect((await upload(kubelet, { type: 'binary-package', name: 'kubelet', version: '1.34.2' })).statusCode).toBe(
      200,
    );
    const forged = await api.inject({
      method: 'POST',
      url: `/v1/artifacts?type=os-image&name=forged&version=1.0.0&size=${image.length}&sha256=${sha(Buffer.from('other'))}`,
      headers: { ...bearer(tokens.writer), 'content-type': 'application/octet-stream' },
      payload: image,
    });
    expect(forged.statusCode).toBe(400);
    expect(forged.json()).toMatchObject({ field: 'sha256' });

    const created = await api.inject({
      method: 'POST',
      url: '/v1/profiles',
      headers: bearer(tokens.writer),
      payload: profile,
    });
    expect(created.statusCode).toBe(201);
    const again = await api.inject({
      method: 'POST',
      url: '/v1/profiles',
      headers: bearer(tokens.writer),
      payload: profile,
    });
    expect(again.statusCode).toBe(200);
    const changed = { ...profile, spec: { ...profile.spec, binaryPackages: [] } };
    expect(
      (await api.inject({ method: 'POST', url: '/v1/profiles', headers: bearer(tokens.writer), payload: changed }))
        .statusCode,
    ).toBe(409);
    const del = await api.inject({
      method: 'DELETE',
      url: `/v1/artifacts/${sha(kubelet)}`,
      headers: bearer(tokens.writer),
    });
    expect(del.statusCode).toBe(409);
    expect(del.json<{ message: string }>().message).toContain('edge-base@1.0.0');
  });

  it('serves artifact content whole and by range', async () => {
    const whole = await api.inject({
      method: 'GET',
      url: `/v1/artifacts/${sha(image)}/content`,
      headers: bearer(tokens.reader),
    });
    expect(whole.statusCode).toBe(200);
    expect(whole.rawPayload.equals(image)).toBe(true);
    const part = await api.inject({
      method: 'GET',
      url: `/v1/artifacts/${sha(image)}/content`,
      headers: { ...bearer(tokens.reader), range: 'bytes=7-11' },
    });
    expect(part.statusCode).toBe(206);
    expect(part.headers['content-range']).toBe(`bytes 7-11/${image.length}`);
    expect(part.body).toBe(image.subarray(7, 12).toString());
    const beyond = await api.inject({
      method: 'GET',
      url: `/v1/artifacts/${sha(image)}/content`,
      headers: { ...bearer(tokens.reader), range: 'bytes=999-' },
    });
    expect(beyond.statusCode).toBe(416);
  });

  it('creates sites, lists them by selector, and refuses a stale update', async () => {
    for (const [name, region] of [
      ['edge-01', 'eu'],
      ['edge-02', 'us'],
      ['edge-03', 'eu'],
    ] as const) {
      const res = await api.inject({
        method: 'POST',
        url: '/v1/sites',
        headers: bearer(tokens.writer),
        payload: site(name, { region }),
      });
      expect(res.statusCode).toBe(201);
    }
    const dup = await api.inject({
      method: 'POST',
      url: '/v1/sites',
      headers: bearer(tokens.writer),
      payload: site('edge-01', {}),
    });
    expect(dup.statusCode).toBe(409);
    const eu = await api.inject({
      method: 'GET',
      url: '/v1/sites?labelSelector=region%3Deu',
      headers: bearer(tokens.reader),
    });
    expect(eu.json<{ items: { metadata: { name: string } }[] }>().items.map((s) => s.metadata.name)).toEqual([
      'edge-01',
      'edge-03',
    ]);

    const read = (await api.inject({ method: 'GET', url: '/v1/sites/edge-01', headers: bearer(tokens.reader) })).json<{
      metadata: { resourceVersion: string };
    }>();
    const update = (labels: Record<string, string>) => {
      const body = site('edge-01', labels);
      return api.inject({
        method: 'PUT',
        url: '/v1/sites/edge-01',
        headers: bearer(tokens.writer),
        payload: { ...body, metadata: { ...body.metadata, resourceVersion: read.metadata.resourceVersion } },
      });
    };
    expect((await update({ region: 'eu', tier: 'gold' })).statusCode).toBe(200);
    const stale = await update({ region: 'eu', tier: 'silver' });
    expect(stale.statusCode).toBe(409);
    expect(stale.json()).toMatchObject({ error: 'Conflict', field: 'metadata.resourceVersion' });
    const now = (await api.inject({ method: 'GET', url: '/v1/sites/edge-01', headers: bearer(tokens.reader) })).json<{
      metadata: { labels: Record<string, string> };
    }>();
    expect(now.metadata.labels).toEqual({ region: 'eu', tier: 'gold' });

    const missing = site('edge-09', {});
    missing.spec.softwareProfile.version = '9.9.9';
    const refused = await api.inject({
      method: 'POST',
      url: '/v1/sites',
      headers: bearer(tokens.writer),
      payload: missing,
    });
    expect(refused.statusCode).toBe(422);
    expect(refused.json()).toMatchObject({ field: 'spec.softwareProfile' });
    expect(
      (await api.inject({ method: 'GET', url: '/v1/sites/edge-09', headers: bearer(tokens.reader) })).statusCode,
    ).toBe(404);
  });

  it('never returns a secret value', async () => {
    const password = 'Sup3r-BMC-password';
    const put = await api.inject({
      method: 'PUT',
      url: '/v1/secrets/bmc',
      headers: bearer(tokens.writer),
      payload: {
        apiVersion: 'icn.akraino.org/v1alpha1',
        kind: 'Secret',
        metadata: { name: 'bmc' },
        type: 'bmc-credentials',
        stringData: { username: 'admin', password },
      },
    });
    expect(put.statusCode).toBe(200);
    const list = await api.inject({ method: 'GET', url: '/v1/secrets', headers: bearer(tokens.reader) });
    for (const body of [put.body, list.body]) expect(body).not.toContain(password);
    expect(list.json()).toMatchObject({
      items: [{ metadata: { name: 'bmc' }, type: 'bmc-credentials', keys: ['password', 'username'] }],
    });
    await expect(store.secrets.reveal('bmc')).resolves.toMatchObject({ data: { password } });
  });

  it('requires a token on every inventory route', async () => {
    for (const url of ['/v1/sites', '/v1/profiles', '/v1/artifacts', '/v1/secrets']) {
      expect((await api.inject({ method: 'GET', url })).statusCode).toBe(401);
    }
  });
});
