/** Reading a node: the state fields every decision needs, credentials masked before the node leaves the client. */
import { PeerError } from '../errors.ts';
import { scrubRecord } from './errors.ts';
import { type IronicHttp, nodePath, nodeSubject } from './http.ts';
import { type IronicNode, nodeFields, nodeSchema } from './types.ts';

export async function getNode(http: IronicHttp, ident: string): Promise<IronicNode> {
  const node = await http.requestJson('GET', `${nodePath(ident)}?fields=${nodeFields}`, nodeSchema, {
    operation: 'read',
    subject: nodeSubject(ident),
  });
  return { ...node, driver_info: scrubRecord(node.driver_info), instance_info: scrubRecord(node.instance_info) };
}

/** undefined when Ironic has no such node; other failures are thrown. */
export async function findNode(http: IronicHttp, ident: string): Promise<IronicNode | undefined> {
  try {
    return await getNode(http, ident);
  } catch (err) {
    if (err instanceof PeerError && err.reason === 'NotFound') return undefined;
    throw err;
  }
}
