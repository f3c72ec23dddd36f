// Needs: PGlite (embedded) and the machine's PostgreSQL (lab peer "postgres"): the same tests on both.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { SiteSpec } from '../../src/domain/site.ts';
import { type Store, StoreError } from '../../src/store/index.ts';
import { SecretRepository } from '../../src/store/secrets.ts';
import { type Backend, openTestStore } from '../support/store.ts';
import { testCodecKeys } from '../support/test-codec-keys.ts';

const sha = (s: string | Buffer) => createHash('sha256').update(s).digest('hex');
const spec = (labels = 0) => ({ hosts: [], marker: labels }) as unknown as SiteSpec;
const code = (err: unknown) => (err instanceof StoreError ? err.code : String(err));

describe.each<Backend>(['pglite', 'postgres'])('store on %s', (backend) => {
  let store: Store;
  beforeAll(async () => {
    store = await openTestStore(backend, 1024);
  });
  afterAll(async () => {
    await store.close();
  });

  describe('sites', () => {
    it('refuses a second create and a stale update, accepts the current one', async () => {
      const created = await store.sites.create({ name: 'edge-01', labels: { tier: 'edge' } }, spec(1));
      await expect(store.sites.create({ name: 'edge-01' }, spec(2)).catch(code)).resolves.toBe('AlreadyExists');
      const v1 = created.metadata.resourceVersion;
      const updated = await store.sites.update(
        { name: 'edge-01', resourceVersion: v1, labels: { tier: 'edge' } },
        spec(3),
      );
      expect(Number(updated.metadata.resourceVersion)).toBeGreaterThan(Number(v1));
      // A second writer still holding v1 must not overwrite the first writer's change.
      await expect(store.sites.update({ name: 'edge-01', resourceVersion: v1 }, spec(4)).catch(code)).resolves.toBe(
        'Conflict',
      );
      expect((await store.sites.get('edge-01')).spec).toEqual(spec(3));
      await expect(store.sites.update({ name: 'edge-01' }, spec(5)).catch(code)).resolves.toBe('Conflict');
    });

    it('lists by label selector, page by page', async () => {
      for (let i = 0; i < 5; i++) {
        await store.sites.create(
          { name: `list-${i}`, labels: { region: i % 2 ? 'odd' : 'even', list: 'yes' } },
          spec(i),
        );
      }
      const even = await store.sites.list({ matchLabels: { region: 'even', list: 'yes' } });
      expect(even.items.map((s) => s.metadata.name)).toEqual(['list-0', 'list-2', 'list-4']);
      const first = await store.sites.list({ hasLabels: ['list'], limit: 2 });
      expect(first.items.map((s) => s.metadata.name)).toEqual(['list-0', 'list-1']);
      const second = await store.sites.list({ hasLabels: ['list'], limit: 2, continue: first.continue! });
      const third = await store.sites.list({ hasLabels: ['list'], limit: 2, continue: second.continue! });
      expect([...second.items, ...third.items].map((s) => s.metadata.name)).toEqual(['list-2', 'list-3', 'list-4']);
      expect(third.continue).toBeUndefined();
    });

    it('writes status at the version read, when one is given, and refuses a stale one', async () => {
      const s = await store.sites.create({ name: 'cas' }, spec());
      const first = await store.sites.setStatus('cas', { phase: 'Installing' }, s.metadata.resourceVersion);
      await expect(
        store.sites.setStatus('cas', { phase: 'Failed' }, s.metadata.resourceVersion).catch(code),
      ).resolves.toBe('Conflict');
      expect((await store.sites.get('cas')).status).toEqual({ phase: 'Installing' });
      await store.sites.setStatus('cas', { phase: 'Ready' }, first.metadata.resourceVersion);
      expect((await store.sites.get('cas')).status).toEqual({ phase: 'Ready' });
      await expect(store.sites.setStatus('nowhere', { phase: 'Ready' }, '1').catch(code)).resolves.toBe('NotFound');
    });

    it('deletes only at the version read, when one is given', async () => {
      const s = await store.sites.create({ name: 'gone' }, spec());
      await store.sites.setStatus('gone', { phase: 'Ready' });
      await expect(store.sites.delete('gone', s.metadata.resourceVersion).catch(code)).resolves.toBe('Conflict');
      await store.sites.delete('gone');
      await expect(store.sites.get('gone').catch(code)).resolves.toBe('NotFound');
    });
  });

  describe('artifacts', () => {
    const content = Buffer.from('#!/bin/sh\necho kubelet 1.34.2\n');
    const artifact = {
      type: 'binary-package' as const,
      name: 'kubelet',
      version: '1.34.2',
      sha256: sha(content),
      size: content.length,
      metadata: {},
    };

    function visibleFiles(): string[] {
      const dir = join(store.artifacts.files.root, 'sha256');
      return existsSync(dir)
        ? readdirSync(dir, { recursive: true, withFileTypes: true })
            .filter((d) => d.isFile())
            .map((d) => d.name)
        : [];
    }

    it('refuses a wrong digest, a truncated body and an oversized one, leaving nothing visible', async () => {
      const before = visibleFiles();
      const wrong = { ...artifact, sha256: sha('something else') };
      await expect(
        store.artifacts.upload(wrong, Readable.from([content])).catch((e: unknown) => (e as StoreError).field),
      ).resolves.toBe('sha256');
      await expect(
        store.artifacts
          .upload(artifact, Readable.from([content.subarray(0, 10)]))
          .catch((e: unknown) => (e as StoreError).field),
      ).resolves.toBe('size');
      const big = Buffer.alloc(2048, 1);
      await expect(
        store.artifacts.upload({ ...artifact, sha256: sha(big), size: big.length }, Readable.from([big])).catch(code),
      ).resolves.toBe('Invalid');
      const longer = Buffer.concat([content, Buffer.from('x')]);
      await expect(store.artifacts.upload(artifact, Readable.from([longer])).catch(code)).resolves.toBe('Invalid');
      expect(visibleFiles()).toEqual(before);
      await expect(store.artifacts.get(artifact.sha256).catch(code)).resolves.toBe('NotFound');
      expect(readdirSync(join(store.artifacts.files.root, 'tmp'))).toEqual([]);
    });

    it('stores the same content once, serves ranges, and refuses deletion while a profile uses it', async () => {
      expect((await store.artifacts.upload(artifact, Readable.from([content]))).created).toBe(true);
      expect((await store.artifacts.upload(artifact, Readable.from([content]))).created).toBe(false);
      expect(visibleFiles().filter((f) => f === artifact.sha256)).toHaveLength(1);
      await expect(text(store.artifacts.files.open(artifact.sha256, { start: 10, end: 13 }))).resolves.toBe(
        content.subarray(10, 14).toString(),
      );

      const image = Buffer.from('os image');
      await store.artifacts.upload(
        { ...artifact, type: 'os-image', name: 'ubuntu', sha256: sha(image), size: image.length },
        Readable.from([image]),
      );
      const profileSpec = {
        version: '1.0.0',
        osImage: { sha256: sha(image) },
        binaryPackages: [
          {
            name: 'kubelet',
            version: '1.34.2',
            artifact: { sha256: artifact.sha256 },
            install: 'i',
            verify: 'v',
            rebootRequired: false,
          },
        ],
        containerPackages: [],
      };
      await store.profiles.create({ name: 'edge-base' }, profileSpec);
      // What a patch to it may have to send: every artifact it references, with its size.
      await expect(store.profiles.artifactSizes('edge-base', '1.0.0')).resolves.toEqual({
        [sha(image)]: image.length,
        [artifact.sha256]: artifact.size,
      });
      await expect(store.profiles.artifactSizes('edge-base', '9.9.9')).resolves.toEqual({});
      await expect(store.artifacts.delete(artifact.sha256).catch(code)).resolves.toBe('InUse');
      expect(existsSync(store.artifacts.files.pathOf(artifact.sha256))).toBe(true);

      // Immutable per version: the same spec again is fine, another is refused.
      expect((await store.profiles.create({ name: 'edge-base' }, profileSpec)).created).toBe(false);
      await expect(
        store.profiles.create({ name: 'edge-base' }, { ...profileSpec, binaryPackages: [] }).catch(code),
      ).resolves.toBe('Immutable');
      await expect(
        store.profiles.create({ name: 'other' }, { ...profileSpec, osImage: { sha256: sha('missing') } }).catch(code),
      ).resolves.toBe('MissingReference');

      await store.profiles.delete('edge-base', '1.0.0');
      await store.artifacts.delete(artifact.sha256);
      expect(existsSync(store.artifacts.files.pathOf(artifact.sha256))).toBe(false);
    });
  });

  describe('secrets', () => {
    it('stores no clear text, reveals to the caller that uses it, and survives a key rotation', async () => {
      const password = 'bmc-P4ssw0rd-never-in-clear';
      const summary = await store.secrets.put({ name: 'bmc-edge-01' }, 'bmc-credentials', {
        username: 'admin',
        password,
      });
      expect(summary).toMatchObject({ type: 'bmc-credentials', keys: ['password', 'username'] });
      expect(JSON.stringify(summary)).not.toContain(password);
      const rows = await store.sql.query<{ ciphertext: Uint8Array }>('SELECT * FROM secrets WHERE name = $1', [
        'bmc-edge-01',
      ]);
      expect(Buffer.from(JSON.stringify(rows)).includes(password)).toBe(false);
      expect(Buffer.from(rows[0]!.ciphertext).includes(password)).toBe(false);

      const rotated = new SecretRepository(store.sql, { keys: { ...testCodecKeys.keys }, activeKeyId: 'test-2026-b' });
      await expect(rotated.reveal('bmc-edge-01')).resolves.toEqual({
        type: 'bmc-credentials',
        data: { username: 'admin', password },
      });
      await rotated.put({ name: 'ssh-edge-01' }, 'ssh-key', { privateKey: 'key' });
      await expect(store.secrets.reveal('ssh-edge-01')).resolves.toMatchObject({ data: { privateKey: 'key' } });
    });
  });
});
