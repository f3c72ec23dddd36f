/** Shared by the Ironic client tests: the lab peer's info, a client for it, and a clean slate per node name. */
import { labUp } from '../../../deploy/dev/lab/index.ts';
import type { IronicLabInfo } from '../../../deploy/dev/lab/ironic.ts';
import { IronicClient, withRetry } from '../../../src/clients/ironic/index.ts';
import { labPeer } from '../../support/lab.ts';

export async function ironicLab(): Promise<{ info: IronicLabInfo; client: IronicClient }> {
  await labUp(['ironic']);
  const info = labPeer('ironic') as IronicLabInfo;
  return { info, client: new IronicClient({ url: info.url }) };
}

/**
 * Removes a node left by an earlier, interrupted run (names and MACs are reused across runs). Retries what Ironic
 * classifies as passing (a lock lost on release, a locked database) as an activity's retry policy would.
 */
export async function removeNode(client: IronicClient, name: string): Promise<void> {
  await withRetry(async () => {
    const node = await client.find(name);
    if (!node) return;
    const wait = { timeoutMs: 60_000, intervalMs: 500 };
    if (node.provision_state === 'active' || node.provision_state === 'deploy failed') {
      await client.undeploy(name, { wait });
    }
    await client.delete(name);
  });
}

export const fastWait = { timeoutMs: 90_000, intervalMs: 250 };
