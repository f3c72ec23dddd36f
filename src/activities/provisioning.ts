/**
 * Hosts through the site's Ironic, after metal3's baremetal-operator: one heartbeating activity takes a host from
 * nothing to active and, on a retry, resumes from what the node really is plus the last heartbeat (the only memory of
 * steps that leave no mark on the provision state: inspection and instance info). BMC credentials are revealed
 * from the secret store at the moment of enrolment and go straight into Ironic, never into a result, a heartbeat or
 * a log line.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import { z } from 'zod';
import type { IronicClient, IronicNode, NodeInterfaces, WaitOptions } from '../clients/ironic/index.ts';
import { PeerError } from '../clients/errors.ts';
import {
  ironicNodeName,
  type ProvisionedHost,
  ProvisionHostInput,
  type ProvisionHostInput as ProvisionHostInputType,
} from '../domain/plan.ts';
import { type HostSpec, SiteEndpoints } from '../domain/site.ts';
import type { SecretRepository } from '../store/secrets.ts';
import { toActivityFailure } from './errors.ts';

/** Ironic hardware types this module enrols; each BMC address scheme names one. */
export type HardwareType = 'fake-hardware' | 'ipmi' | 'redfish' | 'idrac';

export interface ProvisioningActivityDeps {
  /** One client per site Ironic; the caller may cache them. */
  ironic: (url: string) => IronicClient;
  secrets: Pick<SecretRepository, 'reveal'>;
  /** Between two reads of a node while waiting for it to settle. */
  pollIntervalMs?: number;
  /** Deadline of each wait (one state change); past it the attempt fails retryably and the next one resumes. */
  deployTimeoutMs?: number;
  /** Interfaces per hardware type, set over the defaults below (a site whose Ironic deploys with IPA, say). */
  interfaces?: Partial<Record<HardwareType, NodeInterfaces>>;
}

/**
 * The interfaces the project's Ironic (lab and dev, see deploy/dev/lab/ironic) enables: fake-hardware fakes
 * everything; redfish boots over PXE into a ramdisk deploy and has no inspection, because there is no IPA image here.
 * Unset interfaces take the hardware type's defaults from Ironic's configuration.
 */
const defaultInterfaces: Record<HardwareType, NodeInterfaces> = {
  'fake-hardware': {
    boot_interface: 'fake',
    deploy_interface: 'fake',
    inspect_interface: 'fake',
    management_interface: 'fake',
    power_interface: 'fake',
  },
  redfish: {
    boot_interface: 'pxe',
    deploy_interface: 'ramdisk',
    inspect_interface: 'no-inspect',
    management_interface: 'redfish',
    power_interface: 'redfish',
  },
  idrac: {},
  ipmi: {},
};

type DeployImages = NonNullable<z.infer<typeof SiteEndpoints>['ironicDeployImages']>;

/**
 * The site's deploy kernel and ramdisk travel beside the host, since ProvisionHostInput has no field for them yet;
 * they are URLs, not secrets.
 */
export type ProvisionHostRequest = ProvisionHostInputType;

export interface HostRef {
  site: string;
  ironicUrl: string;
  host: string;
}

/** Steps in order; the heartbeat details are the last one completed. */
export const provisionSteps = ['enroll', 'port', 'manage', 'inspect', 'provide', 'instance-info', 'deploy'] as const;
export type ProvisionStep = (typeof provisionSteps)[number];
const ProvisionStepSchema = z.enum(provisionSteps);

/**
 * How far a node is, as the rank of the last step that brings it there: 0 absent, 1 enrolled, 2 manageable,
 * 3 available, 4 deploying or deployed. Transitional and failed states rank with the step that drives them, whose
 * client call then waits (or asks again after a failure) instead of sending a second request.
 */
function progress(node: IronicNode | undefined): number {
  if (!node) return 0;
  switch (node.provision_state) {
    case 'enroll':
    case 'verifying':
    case 'clean failed': // manage, then provide again
      return 1;
    case 'manageable':
    case 'inspecting':
    case 'inspect wait':
    case 'inspect failed':
      return 2;
    case 'cleaning':
    case 'clean wait':
    case 'available':
    case 'deleting':
      return 3;
    case 'deploying':
    case 'wait call-back':
    case 'deploy failed':
    case 'active':
      return 4;
    default:
      throw ApplicationFailure.create({
        message: `Ironic node "${node.name ?? node.uuid}" is in state "${node.provision_state}", which provisioning does not resume from: deprovision it first`,
        type: 'UnexpectedState',
        nonRetryable: true,
      });
  }
}

const reaches: Record<ProvisionStep, number> = {
  enroll: 1,
  port: 1,
  manage: 2,
  inspect: 2,
  provide: 3,
  'instance-info': 3,
  deploy: 4,
};

const settledIn = (node: IronicNode, state: string) =>
  node.provision_state === state && node.target_provision_state === null;

/** Whether a step is behind the node, from its state, or, for steps the state cannot show, from the heartbeat. */
function isDone(step: ProvisionStep, node: IronicNode | undefined, lastDone: number): boolean {
  const p = progress(node);
  if (p !== reaches[step]) return p > reaches[step];
  const n = node as IronicNode;
  switch (step) {
    case 'enroll':
      return true;
    case 'manage':
      return settledIn(n, 'manageable');
    case 'provide':
      return settledIn(n, 'available');
    case 'deploy':
      return settledIn(n, 'active');
    case 'inspect':
      return settledIn(n, 'manageable') && lastDone >= provisionSteps.indexOf(step);
    case 'port':
    case 'instance-info':
      return lastDone >= provisionSteps.indexOf(step);
  }
}

/** The last step the previous attempt reported, unless the node has since gone back behind it (then: none). */
function resumePoint(details: unknown, node: IronicNode | undefined): number {
  const parsed = ProvisionStepSchema.safeParse(details);
  if (!parsed.success) return -1;
  return reaches[parsed.data] <= progress(node) ? provisionSteps.indexOf(parsed.data) : -1;
}

interface BmcAccess {
  driver: HardwareType;
  driverInfo: Record<string, string>;
  /** driver_info keys for the revealed username and password; undefined when the hardware type has no BMC login. */
  credentialKeys?: { username: string; password: string };
}

function invalidBmc(host: HostSpec, why: string): ApplicationFailure {
  return ApplicationFailure.create({
    message: `host "${host.name}": BMC address ${why}`,
    type: 'Invalid',
    nonRetryable: true,
  });
}

/**
 * The BMC address as Ironic's driver_info, after metal3's bmc package except that plain redfish:// means http
 * (as the project's sites and lab use it); redfish+https://, idrac-redfish:// and ilo5-redfish:// are https.
 */
export function bmcAccess(host: HostSpec): BmcAccess {
  const address = host.bmc.address;
  const scheme = address.slice(0, address.indexOf('://'));
  if (scheme === 'fake-hardware') return { driver: 'fake-hardware', driverInfo: {} };
  let url: URL;
  try {
    url = new URL(address);
  } catch {
    throw invalidBmc(host, `"${address}" is not a URL`);
  }
  if (url.hostname === '') throw invalidBmc(host, `"${address}" names no host`);
  if (scheme === 'ipmi') {
    return {
      driver: 'ipmi',
      driverInfo: { ipmi_address: url.hostname.replace(/^\[(.*)\]$/, '$1'), ipmi_port: url.port || '623' },
      credentialKeys: { username: 'ipmi_username', password: 'ipmi_password' },
    };
  }
  const redfish: Record<string, { driver: HardwareType; protocol: string }> = {
    redfish: { driver: 'redfish', protocol: 'http' },
    'redfish+http': { driver: 'redfish', protocol: 'http' },
    'redfish+https': { driver: 'redfish', protocol: 'https' },
    'ilo5-redfish': { driver: 'redfish', protocol: 'https' },
    'idrac-redfish': { driver: 'idrac', protocol: 'https' },
  };
  const kind = redfish[scheme];
  if (!kind) throw invalidBmc(host, `scheme "${scheme}" is not supported`);
  if (url.pathname === '' || url.pathname === '/') {
    throw invalidBmc(host, `"${address}" lacks the system's path (e.g. /redfish/v1/Systems/1)`);
  }
  return {
    driver: kind.driver,
    driverInfo: {
      redfish_address: `${kind.protocol}://${url.host}`,
      redfish_system_id: url.pathname,
      ...(host.bmc.disableCertificateVerification && { redfish_verify_ca: 'False' }),
    },
    credentialKeys: { username: 'redfish_username', password: 'redfish_password' },
  };
}

/** Ironic's root_device hints; metal3 passes the size as a lower bound the same way. */
function rootDeviceHints(host: HostSpec): Record<string, unknown> | undefined {
  const h = host.rootDeviceHints;
  if (!h) return undefined;
  const hints = {
    ...(h.deviceName !== undefined && { name: h.deviceName }),
    ...(h.serialNumber !== undefined && { serial: h.serialNumber }),
    ...(h.minSizeGigabytes !== undefined && { size: `>= ${h.minSizeGigabytes}` }),
    ...(h.rotational !== undefined && { rotational: h.rotational }),
  };
  return Object.keys(hints).length > 0 ? { root_device: hints } : undefined;
}

export function createProvisioningActivities(deps: ProvisioningActivityDeps) {
  const interval = deps.pollIntervalMs ?? 5_000;
  const timeout = deps.deployTimeoutMs ?? 30 * 60_000;

  /** Waits heartbeat on every poll with what is done so far, so the heartbeat timeout can stay short. */
  function waitOptions(details: () => unknown): WaitOptions {
    const ctx = Context.current();
    return {
      timeoutMs: timeout,
      intervalMs: interval,
      onPoll: () => {
        ctx.heartbeat(details());
      },
      signal: ctx.cancellationSignal,
    };
  }

  /** Credentials for this enrolment only; `secrets` collects them so that no failure message can carry them. */
  async function credentials(host: HostSpec, secrets: string[]): Promise<{ username: string; password: string }> {
    const ref = host.bmc.credentialsRef.name;
    const secret = await deps.secrets.reveal(ref);
    const { username, password } = secret.data;
    if (password !== undefined) secrets.push(password);
    if (secret.type !== 'bmc-credentials' || username === undefined || password === undefined) {
      throw ApplicationFailure.create({
        message: `host "${host.name}": secret "${ref}" must be a bmc-credentials secret with username and password`,
        type: 'Invalid',
        nonRetryable: true,
      });
    }
    return { username, password };
  }

  async function bmcDriverInfo(
    host: HostSpec,
    access: BmcAccess,
    deployImages: DeployImages | undefined,
    secrets: string[],
  ): Promise<Record<string, string>> {
    const info: Record<string, string> = { ...access.driverInfo };
    if (access.credentialKeys) {
      const creds = await credentials(host, secrets);
      info[access.credentialKeys.username] = creds.username;
      info[access.credentialKeys.password] = creds.password;
    }
    if (deployImages && access.driver !== 'fake-hardware') {
      info.deploy_kernel = deployImages.kernel;
      info.deploy_ramdisk = deployImages.ramdisk;
    }
    return info;
  }

  return {
    async provisionHost(request: ProvisionHostRequest): Promise<ProvisionedHost> {
      const ctx = Context.current();
      const secrets: string[] = [];
      try {
        const input = ProvisionHostInput.parse(request);
        const deployImages = SiteEndpoints.shape.ironicDeployImages.parse(request.deployImages);
        const { host } = input;
        const ironic = deps.ironic(input.ironicUrl);
        const name = ironicNodeName(input.site, host.name);
        const access = bmcAccess(host);

        let node = await ironic.find(name);
        const lastDone = resumePoint(ctx.info.heartbeatDetails, node);
        let reported: ProvisionStep | undefined = lastDone >= 0 ? provisionSteps[lastDone] : undefined;
        const wait = waitOptions(() => reported);
        const finish = (step: ProvisionStep, after: IronicNode) => {
          node = after;
          reported = step;
          ctx.heartbeat(step);
          ctx.cancellationSignal.throwIfAborted();
        };
        const pending = (step: ProvisionStep) => !isDone(step, node, lastDone);

        if (pending('enroll')) {
          const hints = rootDeviceHints(host);
          finish(
            'enroll',
            await ironic.enroll({
              name,
              driver: access.driver,
              interfaces: { ...defaultInterfaces[access.driver], ...deps.interfaces?.[access.driver] },
              driverInfo: await bmcDriverInfo(host, access, deployImages, secrets),
              ...(hints && { properties: hints }),
            }),
          );
        } else if (node?.provision_state === 'enroll') {
          // Never managed: the credentials may be what failed last time, and the secret may have been fixed since.
          await ironic.setBmcInfo(name, await bmcDriverInfo(host, access, deployImages, secrets));
        }
        const current = () => node as IronicNode;
        if (pending('port')) {
          await ironic.ensurePort(name, host.bootMacAddress);
          finish('port', current());
        }
        if (pending('manage')) finish('manage', await ironic.manage(name, { wait }));
        if (current().inspect_interface !== 'no-inspect' && pending('inspect')) {
          finish('inspect', await ironic.inspect(name, { wait }));
        }
        if (pending('provide')) finish('provide', await ironic.provide(name, { wait }));
        if (pending('instance-info')) {
          // A ramdisk deploy boots a kernel and ramdisk as the instance: the site's deploy images are what there is.
          const ramdisk = current().deploy_interface === 'ramdisk' ? deployImages : undefined;
          finish(
            'instance-info',
            await ironic.setInstanceInfo(name, {
              imageSource: input.image.url,
              imageOsHash: { algorithm: 'sha256', value: input.image.sha256 },
              ...(ramdisk && { kernel: ramdisk.kernel, ramdisk: ramdisk.ramdisk }),
            }),
          );
        }
        if (pending('deploy')) finish('deploy', await ironic.deploy(name, { wait }));

        const done = current();
        return { host: host.name, node: name, nodeUuid: done.uuid, provisionState: done.provision_state };
      } catch (err) {
        // Cancelled: the wait stopped polling and nothing more is asked of Ironic; the node stays where it got to,
        // for the workflow's compensation (deprovisionHost) or a later resume.
        throw toActivityFailure(err, { secrets });
      }
    },

    /** The compensation of provisionHost: back to available, then gone. A node already gone is success. */
    async deprovisionHost(input: HostRef): Promise<void> {
      const ctx = Context.current();
      try {
        const ironic = deps.ironic(input.ironicUrl);
        const name = ironicNodeName(input.site, input.host);
        let last = 'start';
        const wait = waitOptions(() => last);
        // Each round moves the node one stage towards deletable; a node someone else keeps moving is bounded.
        for (let round = 0; round < 8; round++) {
          const node = await ironic.find(name);
          if (!node) return;
          switch (node.provision_state) {
            case 'enroll':
            case 'manageable':
            case 'available':
              await ironic.delete(name);
              ctx.heartbeat('deleted');
              return;
            case 'active':
            case 'deploy failed':
            case 'wait call-back':
            case 'error': // a failed tear-down: Ironic accepts "deleted" again
              await ironic.undeploy(name, { wait });
              last = 'undeploy';
              break;
            case 'clean failed':
            case 'inspect failed':
              await ironic.manage(name, { wait });
              last = 'manage';
              break;
            case 'deploying':
            case 'deleting':
            case 'cleaning':
            case 'clean wait':
            case 'inspecting':
            case 'inspect wait':
            case 'verifying':
              await settle(ironic, node, wait);
              break;
            default:
              throw ApplicationFailure.create({
                message: `Ironic node "${name}" is in state "${node.provision_state}", which deprovisioning does not handle`,
                type: 'UnexpectedState',
                nonRetryable: true,
              });
          }
          ctx.heartbeat(last);
          ctx.cancellationSignal.throwIfAborted();
        }
        throw ApplicationFailure.create({
          message: `Ironic node "${name}" did not become deletable; it keeps changing state`,
          type: 'Busy',
        });
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    /** A power cycle through the BMC, for packages that need one; a retry after the request only waits. */
    async rebootHost(input: HostRef): Promise<void> {
      const ctx = Context.current();
      try {
        const ironic = deps.ironic(input.ironicUrl);
        const name = ironicNodeName(input.site, input.host);
        const wait = waitOptions(() => 'rebooting');
        if (ctx.info.heartbeatDetails !== 'rebooting') {
          await ironic.requestReboot(name);
          ctx.heartbeat('rebooting');
        }
        await ironic.waitForPowerState(name, 'power on', wait);
      } catch (err) {
        throw toActivityFailure(err);
      }
    },
  };
}

/** Waits out a transition; one that ends in failure is fine here, the next round deals with the state it left. */
async function settle(ironic: IronicClient, node: IronicNode, wait: WaitOptions): Promise<void> {
  const target = node.target_provision_state;
  const stable = target === 'active' || target === 'available' || target === 'manageable' ? target : undefined;
  if (stable === undefined) {
    // No stable target to wait for (e.g. "deleting" towards "cleaning"): a pause, then read again.
    await new Promise((resolve) => setTimeout(resolve, wait.intervalMs));
    return;
  }
  try {
    await ironic.waitForProvisionState(node.name ?? node.uuid, stable, wait);
  } catch (err) {
    if (!(err instanceof PeerError && err.reason === 'ProvisionFailed')) throw err;
  }
}

export type ProvisioningActivities = ReturnType<typeof createProvisioningActivities>;
