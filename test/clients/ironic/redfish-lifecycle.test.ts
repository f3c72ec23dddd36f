// Needs: ironic (lab peer: Debian's Ironic with redfish, and sushy-tools' Redfish emulator with basic auth)
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import type { IronicLabInfo } from '../../../deploy/dev/lab/ironic.ts';
import { PeerError } from '../../../src/clients/errors.ts';
import type { IronicClient } from '../../../src/clients/ironic/index.ts';
import { fastWait, ironicLab, removeNode } from './lab.ts';

let client: IronicClient;
let info: IronicLabInfo;
const good = 'it-redfish-lifecycle';
const bad = 'it-redfish-bad-password';

beforeAll(async () => {
  ({ client, info } = await ironicLab());
  await Promise.all([removeNode(client, good), removeNode(client, bad)]);
});

afterAll(async () => {
  await Promise.all([removeNode(client, good), removeNode(client, bad)]);
});

function system(index: number) {
  const s = info.redfish.systems[index];
  if (!s) throw new Error(`the lab has no Redfish system #${index + 1} (ICN_LAB_REDFISH_SYSTEMS)`);
  return s;
}

async function enrollRedfish(name: string, index: number, password: string) {
  const s = system(index);
  await client.enroll({
    name,
    driver: 'redfish',
    interfaces: {
      boot_interface: 'pxe',
      deploy_interface: 'ramdisk',
      inspect_interface: 'no-inspect',
      management_interface: 'redfish',
      power_interface: 'redfish',
    },
  });
  const node = await client.setBmcInfo(name, {
    redfish_address: info.redfish.url,
    redfish_system_id: `/redfish/v1/Systems/${s.uuid}`,
    redfish_username: info.redfish.username,
    redfish_password: password,
    deploy_kernel: `file://${info.deployKernel}`,
    deploy_ramdisk: `file://${info.deployRamdisk}`,
  });
  const port = await client.ensurePort(name, s.mac.toUpperCase());
  expect(port.address).toBe(s.mac);
  expect(port.node_uuid).toBe(node.uuid);
  // Idempotent: the same MAC again is the same port.
  expect((await client.ensurePort(name, s.mac)).uuid).toBe(port.uuid);
  return node;
}

/** The emulator's own view of the system, over Redfish with the lab's credentials. */
async function redfishPowerState(index: number): Promise<string> {
  const auth = Buffer.from(`${info.redfish.username}:${info.redfish.password}`).toString('base64');
  const res = await fetch(`${info.redfish.url}/redfish/v1/Systems/${system(index).uuid}`, {
    headers: { authorization: `Basic ${auth}` },
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { PowerState: string }).PowerState;
}

describe('redfish node against the sushy-tools emulator', () => {
  test('manage → provide → instance info → deploy → power → undeploy, credentials never returned', async () => {
    const started = Date.now();
    const password = info.redfish.password;
    const seen: object[] = [];
    const track = <T extends object>(node: T): T => {
      seen.push(node);
      return node;
    };
    const enrolled = track(await enrollRedfish(good, 0, password));
    expect(enrolled.driver_info.redfish_username).toBe(info.redfish.username);
    expect(enrolled.driver_info.redfish_password).not.toBe(password);

    // Managing makes Ironic talk to the BMC: this passes only if the credentials were accepted over Redfish.
    expect(track(await client.manage(good, { wait: fastWait })).provision_state).toBe('manageable');
    expect(track(await client.provide(good, { wait: fastWait })).provision_state).toBe('available');
    track(
      await client.setInstanceInfo(good, {
        imageSource: `file://${info.deployKernel}`,
        kernel: `file://${info.deployKernel}`,
        ramdisk: `file://${info.deployRamdisk}`,
        imageChecksum: 'd41d8cd98f00b204e9800998ecf8427e',
      }),
    );
    const active = track(await client.deploy(good, { wait: fastWait }));
    expect(active.provision_state).toBe('active');
    expect(active.power_state).toBe('power on');
    expect(await redfishPowerState(0)).toBe('On');

    expect(track(await client.powerOff(good, { wait: fastWait })).power_state).toBe('power off');
    expect(await redfishPowerState(0)).toBe('Off');
    expect(track(await client.powerOn(good, { wait: fastWait })).power_state).toBe('power on');
    expect(await redfishPowerState(0)).toBe('On');

    const available = track(await client.undeploy(good, { wait: fastWait }));
    expect(available.provision_state).toBe('available');
    console.log(`redfish lifecycle: ${((Date.now() - started) / 1000).toFixed(1)} s`);

    for (const node of seen) expect(JSON.stringify(node)).not.toContain(password);
  });

  test('a wrong BMC password fails manage fast with Ironic last_error, and the password is in no message', async () => {
    const wrong = `wrong-${crypto.randomUUID()}`;
    const node = await enrollRedfish(bad, 1, wrong);
    expect(JSON.stringify(node)).not.toContain(wrong);
    const err = await client.manage(bad, { wait: fastWait }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(PeerError);
    const e = err as PeerError;
    expect(e.reason).toBe('ProvisionFailed');
    expect(e.retryable).toBe(false);
    expect(e.message).toContain(bad);
    expect(e.message).not.toContain(wrong);
    const after = await client.get(bad);
    expect(after.provision_state).toBe('enroll');
    expect(after.last_error).toMatch(/401|authenticat/i);
    expect(JSON.stringify(after)).not.toContain(wrong);
    // Another call that Ironic rejects: its message must be scrubbed as well.
    const deployErr = (await client.deploy(bad).catch((x: unknown) => x)) as PeerError;
    expect(deployErr.reason).toBe('BadRequest');
    expect(deployErr.message).not.toContain(wrong);
  });
});
