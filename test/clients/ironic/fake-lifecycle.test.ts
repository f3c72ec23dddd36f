// Needs: ironic (lab peer: Debian's Ironic with fake-hardware)
import { afterAll, beforeAll, describe, expect, jest, test } from '@jest/globals';
import type { IronicClient } from '../../../src/clients/ironic/index.ts';
import { fastWait, ironicLab, removeNode } from './lab.ts';

const name = 'it-fake-lifecycle';
let client: IronicClient;

beforeAll(async () => {
  ({ client } = await ironicLab());
  await removeNode(client, name);
});

afterAll(async () => {
  await removeNode(client, name);
});

describe('fake-hardware node through its whole lifecycle', () => {
  test('enroll → manage → inspect → provide → instance info → deploy → power → undeploy → delete', async () => {
    const started = Date.now();
    const enrolled = await client.enroll({
      name,
      driver: 'fake-hardware',
      interfaces: { deploy_interface: 'fake', inspect_interface: 'fake', boot_interface: 'fake' },
      properties: { cpus: 4, memory_mb: 8192, local_gb: 100 },
    });
    expect(enrolled.provision_state).toBe('enroll');
    expect(enrolled.name).toBe(name);

    expect((await client.manage(name, { wait: fastWait })).provision_state).toBe('manageable');
    const inspected = await client.inspect(name, { wait: fastWait });
    expect(inspected.provision_state).toBe('manageable');
    expect(inspected.last_error).toBeNull();
    expect((await client.provide(name, { wait: fastWait })).provision_state).toBe('available');

    const withImage = await client.setInstanceInfo(name, {
      imageSource: 'http://127.0.0.1:1/images/edge-os.qcow2',
      imageOsHash: { algorithm: 'sha256', value: 'a'.repeat(64) },
    });
    expect(withImage.instance_info.image_source).toBe('http://127.0.0.1:1/images/edge-os.qcow2');
    expect(withImage.instance_info.image_os_hash_algo).toBe('sha256');

    const deploying = await client.deploy(name);
    expect(deploying.target_provision_state).toBe('active');
    const active = await client.waitForProvisionState(name, 'active', fastWait);
    expect(active.provision_state).toBe('active');
    // Asking again is a no-op, not Ironic's 400 "can not be performed in state active".
    expect((await client.deploy(name, { wait: fastWait })).provision_state).toBe('active');

    expect((await client.powerOff(name, { wait: fastWait })).power_state).toBe('power off');
    expect((await client.powerOn(name, { wait: fastWait })).power_state).toBe('power on');
    expect((await client.reboot(name, { wait: fastWait })).power_state).toBe('power on');
    // A reboot asked for without waiting: the node's read and the request, no read after it.
    const calls = jest.spyOn(globalThis, 'fetch');
    try {
      await client.requestReboot(name);
      expect(calls.mock.calls.map(([, init]) => init?.method ?? 'GET')).toEqual(['GET', 'PUT']);
    } finally {
      calls.mockRestore();
    }
    expect((await client.waitForPowerState(name, 'power on', fastWait)).power_state).toBe('power on');

    const available = await client.undeploy(name, { wait: fastWait });
    expect(available.provision_state).toBe('available');
    expect(available.target_provision_state).toBeNull();
    console.log(`fake-hardware lifecycle: ${((Date.now() - started) / 1000).toFixed(1)} s`);

    await client.delete(name);
    expect(await client.find(name)).toBeUndefined();
    await client.delete(name); // already gone: still fine
  });
});
