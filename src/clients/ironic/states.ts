/**
 * Provision and power state changes. Each is idempotent: a node already in (or already heading to) the wanted state
 * is not asked again, because Ironic answers a repeated request with 400 InvalidStateRequested and a retried
 * activity must succeed. With `wait`, the call returns once the node has settled.
 */
import { type IronicHttp, nodePath, nodeSubject } from './http.ts';
import { getNode } from './read.ts';
import type { IronicNode, PowerTarget, StableProvisionState } from './types.ts';
import { isFailedState, type WaitOptions, waitForPowerState, waitForProvisionState } from './wait.ts';

export interface StateChangeOptions {
  wait?: WaitOptions;
}

interface Transition {
  /** Ironic's verb for PUT .../states/provision. */
  verb: 'manage' | 'inspect' | 'provide' | 'active' | 'deleted';
  settlesIn: StableProvisionState;
  /** True when the node is already there or on its way: no request is sent. */
  underway: (node: IronicNode) => boolean;
}

const settledIn = (n: IronicNode, state: string) => n.provision_state === state && n.target_provision_state === null;

export const transitions = {
  manage: {
    verb: 'manage',
    settlesIn: 'manageable',
    underway: (n) => settledIn(n, 'manageable') || n.provision_state === 'verifying',
  },
  inspect: {
    verb: 'inspect',
    settlesIn: 'manageable',
    underway: (n) => n.provision_state === 'inspecting' || n.provision_state === 'inspect wait',
  },
  provide: {
    verb: 'provide',
    settlesIn: 'available',
    underway: (n) => settledIn(n, 'available') || n.target_provision_state === 'available',
  },
  deploy: {
    verb: 'active',
    settlesIn: 'active',
    underway: (n) => settledIn(n, 'active') || n.target_provision_state === 'active',
  },
  undeploy: {
    verb: 'deleted',
    settlesIn: 'available',
    underway: (n) =>
      settledIn(n, 'available') || (n.target_provision_state === 'available' && n.provision_state !== 'manageable'),
  },
} satisfies Record<string, Transition>;

export type TransitionName = keyof typeof transitions;

export async function changeProvisionState(
  http: IronicHttp,
  ident: string,
  name: TransitionName,
  opts: StateChangeOptions & { configdrive?: string | Record<string, unknown> } = {},
): Promise<IronicNode> {
  const t: Transition = transitions[name];
  const before = await getNode(http, ident);
  // A failed node keeps its target state, yet asking again is exactly what a retry of the step means.
  if (isFailedState(before.provision_state) || !t.underway(before)) {
    await http.request('PUT', `${nodePath(ident)}/states/provision`, undefined, {
      operation: name,
      subject: nodeSubject(ident),
      body: { target: t.verb, ...(opts.configdrive !== undefined && { configdrive: opts.configdrive }) },
    });
  }
  return opts.wait ? waitForProvisionState(http, ident, t.settlesIn, opts.wait) : getNode(http, ident);
}

/** Asks for the power state unless the node is there or on its way; returns once Ironic has taken the request. */
export async function requestPowerState(http: IronicHttp, ident: string, target: PowerTarget): Promise<void> {
  const before = await getNode(http, ident);
  const there = target !== 'rebooting' && before.power_state === target && before.target_power_state === null;
  if (!there && before.target_power_state !== target) {
    await http.request('PUT', `${nodePath(ident)}/states/power`, undefined, {
      operation: target === 'rebooting' ? 'reboot' : target,
      subject: nodeSubject(ident),
      body: { target },
    });
  }
}

export async function setPowerState(
  http: IronicHttp,
  ident: string,
  target: PowerTarget,
  opts: StateChangeOptions = {},
): Promise<IronicNode> {
  await requestPowerState(http, ident, target);
  const settles = target === 'power off' ? 'power off' : 'power on';
  return opts.wait ? waitForPowerState(http, ident, settles, opts.wait) : getNode(http, ident);
}
