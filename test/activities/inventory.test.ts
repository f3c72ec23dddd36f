// Needs: PGlite (embedded) and the machine's PostgreSQL (lab peer "postgres"), where parallel writers really race
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import { ApplicationFailure } from '@temporalio/common';
import { createInventoryActivities } from '../../src/activities/inventory.ts';
import { SitePlan } from '../../src/domain/plan.ts';
import { SiteSpec, type SiteStatus } from '../../src/domain/site.ts';
import { SoftwareProfileSpec } from '../../src/domain/software-profile.ts';
import type { Store } from '../../src/store/index.ts';
import { type Backend, openTestStore } from '../support/store.ts';

const sha = (s: string) => createHash('sha256').update(s).digest('hex');

const siteSpec = (profileVersion: string) =>
  SiteSpec.parse({
    endpoints: { ironicUrl: 'http://127.0.0.1:6385', bpaUrl: 'http://127.0.0.1:9015' },
    cluster: { kubernetesVersion: 'v1.34.2', controlPlaneEndpoint: { host: '10.1.0.100' } },
    softwareProfile: { name: 'edge-base', version: profileVersion },
    hosts: [
      {
        name: 'host-1',
        role: 'control-plane',
        bmc: { address: 'fake-hardware://', credentialsRef: { name: 'bmc' } },
        bootMacAddress: '52:54:00:ac:10:01',
        ssh: { address: '10.1.0.1', keyRef: { name: 'ssh' } },
      },
    ],
  });

async function failureOf(p: Promise<unknown>): Promise<ApplicationFailure> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(ApplicationFailure);
  return err as ApplicationFailure;
}

describe.each<Backend>(['pglite', 'postgres'])('inventory activities on %s', (backend) => {
  let store: Store;
  let activities: ReturnType<typeof createInventoryActivities>;
  const status = async (site: string): Promise<SiteStatus | undefined> => (await store.sites.get(site)).status;

  beforeAll(async () => {
    store = await openTestStore(backend);
    activities = createInventoryActivities({ store });
    const image = 'os image bytes';
    await store.artifacts.upload(
      { type: 'os-image', name: 'edge-os', version: '1.0.0', sha256: sha(image), size: image.length, metadata: {} },
      Readable.from([Buffer.from(image)]),
    );
    await store.profiles.create(
      { name: 'edge-base' },
      SoftwareProfileSpec.parse({ version: '1.0.0', osImage: { sha256: sha(image) } }),
    );
    await store.sites.create({ name: 'edge-01' }, siteSpec('1.0.0'));
    await store.sites.create({ name: 'edge-orphan' }, siteSpec('9.9.9'));
  });

  afterAll(async () => {
    await store.close();
  });

  test('loadSitePlan resolves the site and its profile; a missing one fails for good', async () => {
    const plan = await activities.loadSitePlan('edge-01');
    expect(SitePlan.parse(plan)).toEqual(plan);
    expect(plan.site).toBe('edge-01');
    expect(plan.spec.hosts.map((h) => h.name)).toEqual(['host-1']);
    expect(plan.profile).toMatchObject({ name: 'edge-base', version: '1.0.0' });
    expect(plan.profile.spec.osImage.sha256).toBe(sha('os image bytes'));
    // A plan carries secret references, never values.
    expect(plan.spec.hosts[0]?.bmc.credentialsRef).toEqual({ name: 'bmc' });

    const missingSite = await failureOf(activities.loadSitePlan('edge-nowhere'));
    expect(missingSite).toMatchObject({ type: 'NotFound', nonRetryable: true });
    expect(missingSite.message).toContain('edge-nowhere');

    const missingProfile = await failureOf(activities.loadSitePlan('edge-orphan'));
    expect(missingProfile).toMatchObject({ type: 'MissingReference', nonRetryable: true });
    expect(missingProfile.message).toContain('edge-base 9.9.9');
  });

  test('recordSiteStatus merges, keeps the phase, and writes nothing when nothing changes', async () => {
    await activities.recordSiteStatus({
      site: 'edge-01',
      status: { phase: 'Installing', operation: { workflowId: 'site/edge-01/install', type: 'install' } },
    });
    await activities.recordSiteStatus({ site: 'edge-01', status: { message: 'provisioning hosts' } });
    expect(await status('edge-01')).toEqual({
      phase: 'Installing',
      operation: { workflowId: 'site/edge-01/install', type: 'install' },
      message: 'provisioning hosts',
    });

    const before = (await store.sites.get('edge-01')).metadata.resourceVersion;
    await activities.recordSiteStatus({ site: 'edge-01', status: { message: 'provisioning hosts' } });
    await activities.recordSiteStatus({ site: 'edge-01', status: {} });
    expect((await store.sites.get('edge-01')).metadata.resourceVersion).toBe(before);

    await activities.recordSiteStatus({
      site: 'edge-01',
      status: { phase: 'Ready', installedProfile: { name: 'edge-base', version: '1.0.0' }, message: 'installed' },
    });
    expect(await status('edge-01')).toMatchObject({
      phase: 'Ready',
      installedProfile: { name: 'edge-base', version: '1.0.0' },
      message: 'installed',
    });

    const gone = await failureOf(activities.recordSiteStatus({ site: 'edge-nowhere', status: { phase: 'Ready' } }));
    expect(gone).toMatchObject({ type: 'NotFound', nonRetryable: true });
    const invalid = await failureOf(
      activities.recordSiteStatus({ site: 'edge-01', status: { phase: 'Sleeping' as SiteStatus['phase'] } }),
    );
    expect(invalid).toMatchObject({ type: 'Invalid', nonRetryable: true });
    expect((await status('edge-01'))?.phase).toBe('Ready');
  });

  test('recordHostState: hosts reporting at once all land, packages kept when a state change omits them', async () => {
    const names = Array.from({ length: 24 }, (_, i) => `host-${i}`);
    await Promise.all(names.map((host) => activities.recordHostState({ site: 'edge-01', host, state: 'active' })));
    const hosts = (await status('edge-01'))?.hosts ?? {};
    expect(Object.keys(hosts).sort()).toEqual([...names].sort());
    expect((await status('edge-01'))?.phase).toBe('Ready');

    await activities.recordHostState({
      site: 'edge-01',
      host: 'host-1',
      state: 'packages-installed',
      packages: { kubelet: '1.34.2', containerd: '2.1.0' },
    });
    await activities.recordHostState({ site: 'edge-01', host: 'host-1', state: 'rebooting' });
    expect((await status('edge-01'))?.hosts?.['host-1']).toEqual({
      state: 'rebooting',
      packages: { kubelet: '1.34.2', containerd: '2.1.0' },
    });
    // Site-level writes leave the hosts alone.
    await activities.recordSiteStatus({ site: 'edge-01', status: { message: 'patching' } });
    expect(Object.keys((await status('edge-01'))?.hosts ?? {})).toHaveLength(names.length);

    const again = (await store.sites.get('edge-01')).metadata.resourceVersion;
    await activities.recordHostState({ site: 'edge-01', host: 'host-1', state: 'rebooting' });
    expect((await store.sites.get('edge-01')).metadata.resourceVersion).toBe(again);
  });

  test('recordHostState: a site without a status gets one; a site that does not exist is NotFound', async () => {
    await store.sites.create({ name: 'edge-fresh' }, siteSpec('1.0.0'));
    expect(await status('edge-fresh')).toBeUndefined();
    await activities.recordHostState({ site: 'edge-fresh', host: 'host-1', state: 'Rebooting', rebootedBy: 'job-1' });
    expect(await status('edge-fresh')).toEqual({
      phase: 'Pending',
      hosts: { 'host-1': { state: 'Rebooting', rebootedBy: 'job-1' } },
    });
    await activities.recordHostState({ site: 'edge-fresh', host: 'host-1', state: 'Ready', packages: { a: '2' } });
    expect((await status('edge-fresh'))?.hosts?.['host-1']).toEqual({
      state: 'Ready',
      packages: { a: '2' },
      rebootedBy: 'job-1',
    });
    const missing = await failureOf(activities.recordHostState({ site: 'edge-nowhere', host: 'h', state: 'Ready' }));
    expect(missing).toMatchObject({ type: 'NotFound' });
  });

  test('sites whose plans load at once share one read of their profile; a profile missing is asked for again', async () => {
    const fresh = createInventoryActivities({ store });
    const sites = ['edge-share-0', 'edge-share-1', 'edge-share-2', 'edge-share-3'];
    for (const site of sites) await store.sites.create({ name: site }, siteSpec('1.0.0'));
    const reads = jest.spyOn(store.profiles, 'get');
    try {
      const plans = await Promise.all(sites.map((site) => fresh.loadSitePlan(site)));
      expect(plans.map((p) => p.profile.spec.osImage.sha256)).toEqual(sites.map(() => sha('os image bytes')));
      expect(reads).toHaveBeenCalledTimes(1);

      await store.sites.create({ name: 'edge-later' }, siteSpec('2.0.0'));
      expect(await failureOf(fresh.loadSitePlan('edge-later'))).toMatchObject({ type: 'MissingReference' });
      await store.profiles.create(
        { name: 'edge-base' },
        SoftwareProfileSpec.parse({ version: '2.0.0', osImage: { sha256: sha('os image bytes') } }),
      );
      // The miss was not kept: the profile published since is found.
      expect((await fresh.loadSitePlan('edge-later')).profile.version).toBe('2.0.0');
      expect(reads).toHaveBeenCalledTimes(3);
    } finally {
      reads.mockRestore();
    }
  });
});
