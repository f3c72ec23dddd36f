// Needs: ironic (lab peer: Debian's Ironic with fake-hardware and redfish, sushy-tools' Redfish emulator), PGlite
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type { IronicLabInfo } from '../../deploy/dev/lab/ironic.ts';
import { createProvisioningActivities, type ProvisionHostRequest } from '../../src/activities/provisioning.ts';
import { IronicClient } from '../../src/clients/ironic/index.ts';
import { ironicNodeName } from '../../src/domain/plan.ts';
import { HostSpec } from '../../src/domain/site.ts';
import type { Store } from '../../src/store/index.ts';
import { ironicLab, removeNode } from '../clients/ironic/lab.ts';
import { openTestStore } from '../support/store.ts';

const site = 'actprov';
const hosts = { a: 'fake-a', b: 'fake-b', c: 'fake-c', good: 'rf-good', bad: 'rf-bad' };
const nodes = Object.values(hosts).map((h) => ironicNodeName(site, h));
const image = { url: 'http://127.0.0.1:1/images/edge-os.qcow2', sha256: 'e'.repeat(64) };

let info: IronicLabInfo;
let client: IronicClient;
let store: Store;
let activities: ReturnType<typeof createProvisioningActivities>;

/** What Ironic was asked to change, as seen on the wire: every non-GET request the activity's client sent. */
const sent: string[] = [];
const realFetch = globalThis.fetch;

beforeAll(async () => {
  ({ info, client } = await ironicLab());
  await Promise.all(nodes.map((n) => removeNode(client, n)));
  store = await openTestStore('pglite');
  activities = createProvisioningActivities({
    ironic: (url) => new IronicClient({ url }),
    secrets: store.secrets,
    pollIntervalMs: 250,
    deployTimeoutMs: 180_000,
  });
  globalThis.fetch = async (input: string | URL | Request, init?: RequestInit) => {
    const url = input instanceof Request ? input.url : String(input);
    const method = init?.method ?? 'GET';
    if (url.startsWith(info.url) && method !== 'GET') {
      const body = typeof init?.body === 'string' ? (JSON.parse(init.body) as { target?: string }) : {};
      sent.push(`${method} ${url.slice(info.url.length)}${body.target ? ` ${body.target}` : ''}`);
    }
    return realFetch(input, init);
  };
});

afterAll(async () => {
  globalThis.fetch = realFetch;
  await Promise.all(nodes.map((n) => removeNode(client, n)));
  await store.close();
});

function fakeHost(name: string, mac: string): HostSpec {
  return HostSpec.parse({
    name,
    role: 'worker',
    bmc: { address: 'fake-hardware://', credentialsRef: { name: 'unused' } },
    bootMacAddress: mac,
    ssh: { address: '127.0.0.1', keyRef: { name: 'ssh' } },
  });
}

function redfishHost(name: string, system: number, secret: string): HostSpec {
  const s = info.redfish.systems[system];
  if (!s) throw new Error(`the lab has no Redfish system #${system + 1} (ICN_LAB_REDFISH_SYSTEMS)`);
  return HostSpec.parse({
    name,
    role: 'worker',
    bmc: {
      address: `redfish://${new URL(info.redfish.url).host}/redfish/v1/Systems/${s.uuid}`,
      credentialsRef: { name: secret },
    },
    bootMacAddress: s.mac,
    ssh: { address: '127.0.0.1', keyRef: { name: 'ssh' } },
  });
}

interface Run<T> {
  result?: T;
  error?: unknown;
  heartbeats: unknown[];
  sent: string[];
  ms: number;
}

/** Runs one activity attempt as a worker would, with the previous attempt's heartbeat details when given. */
async function attempt<T>(
  fn: () => Promise<T>,
  opts: { heartbeatDetails?: unknown; cancelAt?: unknown } = {},
): Promise<Run<T>> {
  const env = new MockActivityEnvironment(
    { heartbeatDetails: opts.heartbeatDetails, heartbeatTimeoutMs: 30_000 },
    // Failed attempts are expected here and asserted on: the worker's WARN line for each is noise.
    { logger: new DefaultLogger('ERROR') },
  );
  const heartbeats: unknown[] = [];
  env.on('heartbeat', (d: unknown) => {
    heartbeats.push(d);
    if (opts.cancelAt !== undefined && d === opts.cancelAt) env.cancel();
  });
  sent.length = 0;
  const started = Date.now();
  try {
    const result = await env.run<[], T, () => Promise<T>>(fn);
    return { result, heartbeats, sent: [...sent], ms: Date.now() - started };
  } catch (error) {
    return { error, heartbeats, sent: [...sent], ms: Date.now() - started };
  }
}

/** Heartbeats without the repeats that polls send between two steps. */
const distinct = (xs: unknown[]) => xs.filter((x, i) => i === 0 || xs[i - 1] !== x);
const provisionCalls = (run: Run<unknown>) => run.sent.filter((s) => s.includes('/states/provision'));

describe('provisionHost on fake-hardware', () => {
  const input = (host: string, mac: string): ProvisionHostRequest => ({
    site,
    ironicUrl: info.url,
    host: fakeHost(host, mac),
    image,
  });

  test('from nothing to active, heartbeating each step; a second run redoes nothing', async () => {
    const name = ironicNodeName(site, hosts.a);
    expect(await client.find(name)).toBeUndefined();

    const first = await attempt(() => activities.provisionHost(input(hosts.a, '52:54:00:ac:7e:01')));
    expect(first.error).toBeUndefined();
    expect(first.result).toMatchObject({ host: hosts.a, node: name, provisionState: 'active' });
    const node = await client.get(name);
    expect(node.provision_state).toBe('active');
    expect(node.target_provision_state).toBeNull();
    expect(node.uuid).toBe(first.result?.nodeUuid);
    expect(node.instance_info.image_source).toBe(image.url);
    expect(node.instance_info.image_os_hash_value).toBe(image.sha256);
    // Each step reported once, in order, after it was done (polls repeat the last one in between).
    expect(distinct(first.heartbeats)).toEqual([
      'enroll',
      'port',
      'manage',
      'inspect',
      'provide',
      'instance-info',
      'deploy',
    ]);
    expect(first.sent.filter((s) => s === 'POST /v1/nodes')).toHaveLength(1);
    expect(first.sent).toContain('POST /v1/ports');
    expect(provisionCalls(first).map((s) => s.split(' ').at(-1))).toEqual(['manage', 'inspect', 'provide', 'active']);
    console.log(`fake-hardware host to active: ${(first.ms / 1000).toFixed(1)} s`);

    const again = await attempt(() => activities.provisionHost(input(hosts.a, '52:54:00:ac:7e:01')));
    expect(again.error).toBeUndefined();
    expect(again.result).toEqual(first.result);
    expect(again.sent).toEqual([]);
    expect(again.heartbeats).toEqual([]);
    expect(again.ms).toBeLessThan(Math.max(5_000, first.ms / 2));
    expect((await client.get(name)).provision_state).toBe('active');
  });

  test('cancelled after manage, resumed from the heartbeat: neither enroll, port nor manage is repeated', async () => {
    const name = ironicNodeName(site, hosts.b);
    const req = input(hosts.b, '52:54:00:ac:7e:02');
    const cancelled = await attempt(() => activities.provisionHost(req), { cancelAt: 'manage' });
    expect(cancelled.error).toBeInstanceOf(CancelledFailure);
    expect(cancelled.heartbeats.at(-1)).toBe('manage');
    const stopped = await client.get(name);
    expect(stopped.provision_state).toBe('manageable');
    expect(stopped.target_provision_state).toBeNull();

    const resumed = await attempt(() => activities.provisionHost(req), { heartbeatDetails: 'manage' });
    expect(resumed.error).toBeUndefined();
    expect(resumed.sent).not.toContain('POST /v1/nodes');
    expect(resumed.sent).not.toContain('POST /v1/ports');
    // Inspection leaves no mark on the state, so without a heartbeat saying it was done it is done now.
    expect(provisionCalls(resumed).map((s) => s.split(' ').at(-1))).toEqual(['inspect', 'provide', 'active']);
    // Polls while inspecting repeat the last step done, which the resumed attempt knew from its details.
    expect(distinct(resumed.heartbeats)).toEqual(['manage', 'inspect', 'provide', 'instance-info', 'deploy']);
    expect((await client.get(name)).provision_state).toBe('active');
  });

  test('resumed after inspection from the heartbeat alone, and mid-deploy without a second deploy request', async () => {
    const name = ironicNodeName(site, hosts.c);
    const req = input(hosts.c, '52:54:00:ac:7e:03');
    const cancelled = await attempt(() => activities.provisionHost(req), { cancelAt: 'inspect' });
    expect(cancelled.error).toBeInstanceOf(CancelledFailure);
    expect((await client.get(name)).provision_state).toBe('manageable');

    // The heartbeat says inspected: only provide and instance info follow; then a deploy is asked behind its back.
    const toInfo = await attempt(() => activities.provisionHost(req), {
      heartbeatDetails: 'inspect',
      cancelAt: 'instance-info',
    });
    expect(toInfo.error).toBeInstanceOf(CancelledFailure);
    expect(provisionCalls(toInfo).map((s) => s.split(' ').at(-1))).toEqual(['provide']);
    expect((await client.get(name)).provision_state).toBe('available');
    const deploying = await client.deploy(name);
    expect(deploying.target_provision_state).toBe('active');

    // The node is deploying (or already active): the activity waits for it and asks Ironic for nothing.
    const resumed = await attempt(() => activities.provisionHost(req), { heartbeatDetails: 'instance-info' });
    expect(resumed.error).toBeUndefined();
    expect(resumed.sent).toEqual([]);
    expect(resumed.result?.provisionState).toBe('active');
    expect((await client.get(name)).provision_state).toBe('active');
  });

  test('deprovision undeploys and deletes; a second deprovision of a gone node is fine', async () => {
    for (const host of [hosts.a, hosts.b, hosts.c]) {
      const name = ironicNodeName(site, host);
      expect((await client.get(name)).provision_state).toBe('active');
      const run = await attempt(() => activities.deprovisionHost({ site, ironicUrl: info.url, host }));
      expect(run.error).toBeUndefined();
      expect(provisionCalls(run).map((s) => s.split(' ').at(-1))).toEqual(['deleted']);
      expect(run.sent.at(-1)).toBe(`DELETE /v1/nodes/${name}`);
      expect(await client.find(name)).toBeUndefined();
      const again = await attempt(() => activities.deprovisionHost({ site, ironicUrl: info.url, host }));
      expect(again.error).toBeUndefined();
      expect(again.sent).toEqual([]);
    }
  });
});

describe('provisionHost on redfish through the sushy-tools emulator', () => {
  const deployImages = () => ({ kernel: `file://${info.deployKernel}`, ramdisk: `file://${info.deployRamdisk}` });
  // A ramdisk deploy boots the deploy images; the image is a file Ironic may read (under file_url_allowed_paths).
  const redfishImage = () => ({ url: `file://${info.deployKernel}`, sha256: 'f'.repeat(64) });

  async function redfishPowerState(system: number): Promise<string> {
    const auth = Buffer.from(`${info.redfish.username}:${info.redfish.password}`).toString('base64');
    const res = await realFetch(`${info.redfish.url}/redfish/v1/Systems/${info.redfish.systems[system]!.uuid}`, {
      headers: { authorization: `Basic ${auth}` },
    });
    expect(res.status).toBe(200);
    return ((await res.json()) as { PowerState: string }).PowerState;
  }

  test('to active with BMC credentials from a stored secret, rebooted, and back; no credential leaves', async () => {
    const password = info.redfish.password;
    await store.secrets.put({ name: 'actprov-bmc' }, 'bmc-credentials', { username: info.redfish.username, password });
    const name = ironicNodeName(site, hosts.good);
    const req: ProvisionHostRequest = {
      site,
      ironicUrl: info.url,
      host: redfishHost(hosts.good, 2, 'actprov-bmc'),
      image: redfishImage(),
      deployImages: deployImages(),
    };
    const run = await attempt(() => activities.provisionHost(req));
    expect(run.error).toBeUndefined();
    expect(run.result?.provisionState).toBe('active');
    // No inspection: the lab's redfish nodes have none (no-inspect).
    expect(distinct(run.heartbeats)).toEqual(['enroll', 'port', 'manage', 'provide', 'instance-info', 'deploy']);
    const node = await client.get(name);
    expect(node).toMatchObject({ driver: 'redfish', provision_state: 'active', power_state: 'power on' });
    expect(node.driver_info).toMatchObject({
      redfish_address: info.redfish.url,
      redfish_system_id: `/redfish/v1/Systems/${info.redfish.systems[2]!.uuid}`,
      redfish_username: info.redfish.username,
      deploy_kernel: deployImages().kernel,
    });
    expect(await redfishPowerState(2)).toBe('On');
    console.log(`redfish host to active: ${(run.ms / 1000).toFixed(1)} s`);
    for (const x of [run.result, run.heartbeats, node]) expect(JSON.stringify(x)).not.toContain(password);

    const reboot = await attempt(() => activities.rebootHost({ site, ironicUrl: info.url, host: hosts.good }));
    expect(reboot.error).toBeUndefined();
    expect(reboot.sent).toEqual([`PUT /v1/nodes/${name}/states/power rebooting`]);
    expect((await client.get(name)).power_state).toBe('power on');
    expect(await redfishPowerState(2)).toBe('On');
    // A retry after the reboot was asked only waits: no second power cycle.
    const retried = await attempt(() => activities.rebootHost({ site, ironicUrl: info.url, host: hosts.good }), {
      heartbeatDetails: 'rebooting',
    });
    expect(retried.error).toBeUndefined();
    expect(retried.sent).toEqual([]);

    const back = await attempt(() => activities.deprovisionHost({ site, ironicUrl: info.url, host: hosts.good }));
    expect(back.error).toBeUndefined();
    expect(await client.find(name)).toBeUndefined();
  });

  test('a wrong BMC password is a non-retryable failure that does not carry the password', async () => {
    const wrong = `wrong-${crypto.randomUUID()}`;
    await store.secrets.put({ name: 'actprov-bmc-wrong' }, 'bmc-credentials', {
      username: info.redfish.username,
      password: wrong,
    });
    const name = ironicNodeName(site, hosts.bad);
    const run = await attempt(() =>
      activities.provisionHost({
        site,
        ironicUrl: info.url,
        host: redfishHost(hosts.bad, 3, 'actprov-bmc-wrong'),
        image: redfishImage(),
        deployImages: deployImages(),
      }),
    );
    expect(run.error).toBeInstanceOf(ApplicationFailure);
    const failure = run.error as ApplicationFailure;
    expect(failure.nonRetryable).toBe(true);
    expect(failure.type).toBe('ProvisionFailed');
    expect(failure.message).toContain(name);
    expect(failure.message).not.toContain(wrong);
    // Everything that would reach workflow history: message, stack, details.
    expect(JSON.stringify([failure.message, failure.stack, failure.details, failure.cause])).not.toContain(wrong);
    expect(JSON.stringify(run.heartbeats)).not.toContain(wrong);
    expect((await client.get(name)).provision_state).toBe('enroll');

    // The operator fixes the secret; the retried step takes the new credentials and goes on.
    await store.secrets.put({ name: 'actprov-bmc-wrong' }, 'bmc-credentials', {
      username: info.redfish.username,
      password: info.redfish.password,
    });
    const fixed = await attempt(
      () =>
        activities.provisionHost({
          site,
          ironicUrl: info.url,
          host: redfishHost(hosts.bad, 3, 'actprov-bmc-wrong'),
          image: redfishImage(),
          deployImages: deployImages(),
        }),
      { heartbeatDetails: run.heartbeats.at(-1) },
    );
    expect(fixed.error).toBeUndefined();
    expect((await client.get(name)).provision_state).toBe('active');
    await attempt(() => activities.deprovisionHost({ site, ironicUrl: info.url, host: hosts.bad }));
    expect(await client.find(name)).toBeUndefined();
  });

  test('a missing credentials secret is non-retryable and names the secret', async () => {
    const run = await attempt(() =>
      activities.provisionHost({
        site,
        ironicUrl: info.url,
        host: redfishHost(hosts.bad, 3, 'actprov-no-such-secret'),
        image,
        deployImages: deployImages(),
      }),
    );
    expect(run.error).toBeInstanceOf(ApplicationFailure);
    expect(run.error).toMatchObject({ type: 'NotFound', nonRetryable: true });
    expect((run.error as Error).message).toContain('actprov-no-such-secret');
    expect(await client.find(ironicNodeName(site, hosts.bad))).toBeUndefined();
  });
});
