/**
 * BMC access (driver_info) and the node's NICs (ports). Ironic masks passwords in what it returns, but not in its
 * error messages about a request; the values are registered with the transport first so that no error or log line
 * from then on can carry them.
 */
import { PeerError } from '../errors.ts';
import { secretKey } from './errors.ts';
import { type IronicHttp, nodePath, nodeSubject } from './http.ts';
import { getNode } from './read.ts';
import { type IronicNode, type IronicPort, portListSchema, portSchema } from './types.ts';

/** Sets (adds or replaces) driver_info keys, e.g. redfish_address, redfish_system_id, redfish_username/password. */
export async function setBmcInfo(
  http: IronicHttp,
  ident: string,
  driverInfo: Record<string, string>,
): Promise<IronicNode> {
  const entries = Object.entries(driverInfo);
  for (const [k, v] of entries) if (secretKey.test(k)) http.rememberSecret(v);
  if (entries.length > 0) {
    await http.request('PATCH', nodePath(ident), undefined, {
      operation: 'set BMC info of',
      subject: nodeSubject(ident),
      body: entries.map(([k, v]) => ({ op: 'add', path: `/driver_info/${k}`, value: v })),
    });
  }
  return getNode(http, ident);
}

/** MACs in Ironic are lowercase; comparing as given would miss a port created with another case. */
function normalMac(mac: string): string {
  return mac.trim().toLowerCase();
}

/**
 * Ensures a port with this MAC on the node. The same MAC on another node is a permanent conflict: a site
 * description with a duplicated boot MAC must be fixed, not retried.
 */
export async function ensurePort(http: IronicHttp, ident: string, mac: string): Promise<IronicPort> {
  const address = normalMac(mac);
  const subject = `port ${address} of ${nodeSubject(ident)}`;
  const node = await getNode(http, ident);
  const find = async (): Promise<IronicPort | undefined> => {
    const list = await http.requestJson(
      'GET',
      `/v1/ports?address=${encodeURIComponent(address)}&fields=uuid,address,node_uuid,pxe_enabled`,
      portListSchema,
      { operation: 'find', subject },
    );
    return list.ports[0];
  };
  const check = (port: IronicPort): IronicPort => {
    if (port.node_uuid !== node.uuid) {
      throw http.error(`Ironic create ${subject}: MAC ${address} already belongs to node ${port.node_uuid}`, {
        retryable: false,
        reason: 'Conflict',
      });
    }
    return port;
  };
  const existing = await find();
  if (existing) return check(existing);
  try {
    return await http.requestJson('POST', '/v1/ports', portSchema, {
      operation: 'create',
      subject,
      body: { node_uuid: node.uuid, address, pxe_enabled: true },
    });
  } catch (err) {
    // Lost a race with a concurrent creation (MACAlreadyExists): the port now exists, mine or another node's.
    if (err instanceof PeerError && err.reason === 'Conflict') {
      const raced = await find();
      if (raced) return check(raced);
    }
    throw err;
  }
}
