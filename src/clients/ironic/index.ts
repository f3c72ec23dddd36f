/**
 * The typed Ironic client: one instance per Ironic endpoint (a site's bootstrap machine), one file per operation
 * group, after metal3's baremetal-operator Ironic provisioner. Every failure is a PeerError('ironic', ...) whose
 * `retryable` and `reason` tell the caller (Temporal's retry policy) what to do; no message carries a credential.
 */
import { setBmcInfo, ensurePort } from './bmc.ts';
import { deleteNode, type EnrollSpec, enrollNode } from './enroll.ts';
import { type IronicHttpOptions, IronicHttp } from './http.ts';
import { type InstanceInfo, setInstanceInfo } from './instance-info.ts';
import { findNode, getNode } from './read.ts';
import { changeProvisionState, requestPowerState, setPowerState, type StateChangeOptions } from './states.ts';
import { versionsSchema, type IronicNode, type IronicPort, type StableProvisionState } from './types.ts';
import { type WaitOptions, waitForPowerState, waitForProvisionState } from './wait.ts';

export { defaultMicroversion, type IronicHttpOptions, type IronicLogger } from './http.ts';
export { classifyStatus, ironicFault, type IronicErrorReason } from './errors.ts';
export { withRetry, type RetryOptions } from './retry.ts';
export { isFailedState, type WaitOptions } from './wait.ts';
export type { EnrollSpec } from './enroll.ts';
export type { InstanceInfo } from './instance-info.ts';
export type { StateChangeOptions } from './states.ts';
export type { IronicNode, IronicPort, NodeInterfaces, PowerTarget, StableProvisionState } from './types.ts';

export class IronicClient {
  readonly #http: IronicHttp;

  constructor(opts: IronicHttpOptions) {
    this.#http = new IronicHttp(opts);
  }

  get url(): string {
    return this.#http.url;
  }

  get microversion(): string {
    return this.#http.microversion;
  }

  /** The server's microversion range; fails (non-retryable) when the pinned version is outside it. */
  async checkVersion(): Promise<{ min: string; max: string }> {
    const v = await this.#http.requestJson('GET', '/', versionsSchema, { operation: 'version of', subject: 'API' });
    const range = { min: v.default_version.min_version, max: v.default_version.version };
    const n = (s: string) => s.split('.').map(Number) as [number, number];
    const cmp = (a: string, b: string) => {
      const [a1, a2] = n(a);
      const [b1, b2] = n(b);
      return a1 - b1 || a2 - b2;
    };
    if (cmp(this.microversion, range.min) < 0 || cmp(this.microversion, range.max) > 0) {
      throw this.#http.error(
        `Ironic at ${this.url} accepts API ${range.min}-${range.max}, this client needs ${this.microversion}`,
        { retryable: false, reason: 'UnsupportedVersion' },
      );
    }
    return range;
  }

  enroll(spec: EnrollSpec): Promise<IronicNode> {
    return enrollNode(this.#http, spec);
  }

  delete(ident: string): Promise<void> {
    return deleteNode(this.#http, ident);
  }

  get(ident: string): Promise<IronicNode> {
    return getNode(this.#http, ident);
  }

  find(ident: string): Promise<IronicNode | undefined> {
    return findNode(this.#http, ident);
  }

  setBmcInfo(ident: string, driverInfo: Record<string, string>): Promise<IronicNode> {
    return setBmcInfo(this.#http, ident, driverInfo);
  }

  ensurePort(ident: string, mac: string): Promise<IronicPort> {
    return ensurePort(this.#http, ident, mac);
  }

  setInstanceInfo(ident: string, info: InstanceInfo): Promise<IronicNode> {
    return setInstanceInfo(this.#http, ident, info);
  }

  /** enroll → manageable (Ironic checks the BMC answers). */
  manage(ident: string, opts?: StateChangeOptions): Promise<IronicNode> {
    return changeProvisionState(this.#http, ident, 'manage', opts);
  }

  /** manageable → inspecting → manageable. */
  inspect(ident: string, opts?: StateChangeOptions): Promise<IronicNode> {
    return changeProvisionState(this.#http, ident, 'inspect', opts);
  }

  /** manageable → (cleaning) → available. */
  provide(ident: string, opts?: StateChangeOptions): Promise<IronicNode> {
    return changeProvisionState(this.#http, ident, 'provide', opts);
  }

  /** available → deploying → active. */
  deploy(
    ident: string,
    opts?: StateChangeOptions & { configdrive?: string | Record<string, unknown> },
  ): Promise<IronicNode> {
    return changeProvisionState(this.#http, ident, 'deploy', opts);
  }

  /** active → deleting → (cleaning) → available. */
  undeploy(ident: string, opts?: StateChangeOptions): Promise<IronicNode> {
    return changeProvisionState(this.#http, ident, 'undeploy', opts);
  }

  powerOn(ident: string, opts?: StateChangeOptions): Promise<IronicNode> {
    return setPowerState(this.#http, ident, 'power on', opts);
  }

  powerOff(ident: string, opts?: StateChangeOptions): Promise<IronicNode> {
    return setPowerState(this.#http, ident, 'power off', opts);
  }

  reboot(ident: string, opts?: StateChangeOptions): Promise<IronicNode> {
    return setPowerState(this.#http, ident, 'rebooting', opts);
  }

  /**
   * Asks for a power cycle and returns without reading the node again: for a caller that records the request before
   * it waits with waitForPowerState (at a fleet's scale, a read fewer per host rebooted).
   */
  requestReboot(ident: string): Promise<void> {
    return requestPowerState(this.#http, ident, 'rebooting');
  }

  waitForProvisionState(ident: string, target: StableProvisionState, opts: WaitOptions): Promise<IronicNode> {
    return waitForProvisionState(this.#http, ident, target, opts);
  }

  waitForPowerState(ident: string, target: 'power on' | 'power off', opts: WaitOptions): Promise<IronicNode> {
    return waitForPowerState(this.#http, ident, target, opts);
  }
}
