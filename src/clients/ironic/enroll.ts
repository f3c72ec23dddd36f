/**
 * Enrolling and deleting nodes. Enrolment is idempotent by name, since an activity retried after a lost response
 * must find the node it created rather than fail on DuplicateName or, worse, create a second one.
 */
import { PeerError } from '../errors.ts';
import { secretKey } from './errors.ts';
import { type IronicHttp, nodePath, nodeSubject } from './http.ts';
import { findNode, getNode } from './read.ts';
import { type IronicNode, type NodeInterfaces, nodeSchema } from './types.ts';

export interface EnrollSpec {
  name: string;
  /** Hardware type: fake-hardware, redfish, ipmi... */
  driver: string;
  interfaces?: NodeInterfaces;
  /** BMC access; credentials here are masked like setBmcInfo's. */
  driverInfo?: Record<string, string>;
  properties?: Record<string, unknown>;
  resourceClass?: string;
}

/** Returns the existing node of that name untouched, or creates it (in the `enroll` state). */
export async function enrollNode(http: IronicHttp, spec: EnrollSpec): Promise<IronicNode> {
  const existing = await findNode(http, spec.name);
  if (existing) return existing;
  for (const [k, v] of Object.entries(spec.driverInfo ?? {})) if (secretKey.test(k)) http.rememberSecret(v);
  try {
    await http.requestJson('POST', '/v1/nodes', nodeSchema.pick({ uuid: true }), {
      operation: 'enroll',
      subject: nodeSubject(spec.name),
      body: {
        name: spec.name,
        driver: spec.driver,
        ...spec.interfaces,
        ...(spec.driverInfo && { driver_info: spec.driverInfo }),
        ...(spec.properties && { properties: spec.properties }),
        ...(spec.resourceClass !== undefined && { resource_class: spec.resourceClass }),
      },
    });
  } catch (err) {
    // A concurrent enrolment of the same name won the race: theirs is ours.
    if (!(err instanceof PeerError && err.reason === 'Conflict' && /already exists/i.test(err.message))) throw err;
  }
  return getNode(http, spec.name);
}

/** Deleting a node that is already gone succeeds. Ironic refuses while the node is active or transitioning. */
export async function deleteNode(http: IronicHttp, ident: string): Promise<void> {
  try {
    await http.request('DELETE', nodePath(ident), undefined, { operation: 'delete', subject: nodeSubject(ident) });
  } catch (err) {
    if (err instanceof PeerError && err.reason === 'NotFound') return;
    throw err;
  }
}
