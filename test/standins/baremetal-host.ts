/**
 * The metal3 baremetal-operator's part of the stand-in: a BareMetalHost goes registering → inspecting → available →
 * provisioning → provisioned (and back through deprovisioning when its image is removed or it is deleted), with the
 * status fields the operator writes. With an Ironic URL every step is a real Ironic call on a fake-hardware node named
 * `<namespace>~<name>` (the operator's own naming) and the status reflects that node; without one, timers stand in.
 */
import { PeerError } from '../../src/clients/errors.ts';
import type { IronicClient, IronicNode } from '../../src/clients/ironic/index.ts';
import type { KubeObject, KubernetesClient, ObjectRef } from '../../src/clients/kubernetes/index.ts';
import { failAnnotation, failMessageAnnotation, now, type Sightings, specOf, statusOf } from './support.ts';

export const hostFinalizer = 'baremetalhost.metal3.io';

/** The states a host can be failed in on demand. */
export type HostFailState = 'registering' | 'inspecting' | 'provisioning';

/** The operator's errorType for a failure in each state (baremetal-operator's ErrorType values). */
const errorTypes: Record<string, string> = {
  registering: 'registration error',
  inspecting: 'inspection error',
  available: 'preparation error',
  provisioning: 'provisioning error',
  deprovisioning: 'provisioning error',
};

export interface HostContext {
  kube: KubernetesClient;
  ironic: IronicClient | undefined;
  sightings: Sightings;
  stepMs: number;
  failOn: Record<string, HostFailState>;
  /** Where a failure of a background Ironic step is reported (the test may print it). */
  report: (message: string) => void;
}

interface HostSpec {
  online?: boolean;
  bootMACAddress?: string;
  bmc?: { address?: string; credentialsName?: string };
  image?: { url?: string; checksum?: string; checksumType?: string };
  rootDeviceHints?: Record<string, unknown>;
}

const refOfHost = (host: KubeObject): ObjectRef => ({
  apiVersion: 'metal3.io/v1alpha1',
  kind: 'BareMetalHost',
  name: host.metadata.name,
  ...(host.metadata.namespace === undefined ? {} : { namespace: host.metadata.namespace }),
});

export const ironicNodeName = (host: KubeObject): string => `${host.metadata.namespace ?? ''}~${host.metadata.name}`;

const ironicWait = { timeoutMs: 180_000, intervalMs: 250 };

function stateOf(host: KubeObject): string {
  const provisioning = statusOf(host).provisioning as { state?: string } | undefined;
  return provisioning?.state ?? '';
}

/** The status the operator writes for a host in `state`, errors cleared. */
function healthy(host: KubeObject, state: string, node?: IronicNode): Record<string, unknown> {
  const spec = specOf(host) as HostSpec;
  const provisioned = state === 'provisioned' || state === 'provisioning';
  return {
    operationalStatus: 'OK',
    errorType: null,
    errorMessage: '',
    errorCount: 0,
    goodCredentials: { credentials: { name: spec.bmc?.credentialsName, namespace: host.metadata.namespace } },
    poweredOn: node === undefined ? provisioned : node.power_state === 'power on',
    lastUpdated: now(),
    provisioning: {
      state,
      ID: node?.uuid ?? '',
      bootMode: 'UEFI',
      rootDeviceHints: spec.rootDeviceHints ?? {},
      ...(provisioned && spec.image !== undefined ? { image: spec.image } : {}),
    },
    ...(node === undefined ? {} : { hardware: { hostname: host.metadata.name, cpu: { count: 4 } } }),
  };
}

async function setStatus(ctx: HostContext, host: KubeObject, status: Record<string, unknown>): Promise<void> {
  await ctx.kube.patchStatus(refOfHost(host), status);
}

async function fail(ctx: HostContext, host: KubeObject, state: string, message: string): Promise<void> {
  const count = (statusOf(host).errorCount as number | undefined) ?? 0;
  await setStatus(ctx, host, {
    operationalStatus: 'error',
    errorType: errorTypes[state] ?? 'provisioning error',
    errorMessage: message,
    errorCount: count + 1,
    lastUpdated: now(),
  });
}

function failureWanted(ctx: HostContext, host: KubeObject, state: string): string | undefined {
  const asked = host.metadata.annotations?.[failAnnotation] ?? ctx.failOn[host.metadata.name];
  if (asked !== state) return undefined;
  return (
    host.metadata.annotations?.[failMessageAnnotation] ??
    `BareMetalHost ${host.metadata.namespace ?? ''}/${host.metadata.name} failed while ${state} (asked for by the test)`
  );
}

/** The BMC credentials the operator reads before registering; a missing Secret keeps the host waiting. */
async function credentialsProblem(ctx: HostContext, host: KubeObject): Promise<string | undefined> {
  const spec = specOf(host) as HostSpec;
  const name = spec.bmc?.credentialsName;
  if (name === undefined || name === '') return 'Missing BMC connection detail: Credentials';
  try {
    const data = await ctx.kube.readSecret(host.metadata.namespace ?? 'default', name);
    if (data.username === undefined || data.password === undefined) {
      return `Secret ${name} lacks username or password`;
    }
    return undefined;
  } catch (err) {
    if (err instanceof PeerError && err.reason === 'NotFound') return `BMC credentials Secret ${name} not found`;
    throw err;
  }
}

/** One reconcile of one host; returns without waiting when it started a background Ironic step. */
export async function reconcileHost(ctx: HostContext, host: KubeObject): Promise<void> {
  const spec = specOf(host) as HostSpec;
  const status = statusOf(host);
  const state = stateOf(host);
  const key = `${host.metadata.uid ?? ''}/`;

  if (host.metadata.deletionTimestamp !== undefined) {
    await deleteHost(ctx, host, state);
    return;
  }
  if (!(host.metadata.finalizers ?? []).includes(hostFinalizer)) {
    await ctx.kube.update(refOfHost(host), (h) => ({
      ...h,
      metadata: { ...h.metadata, finalizers: [...(h.metadata.finalizers ?? []), hostFinalizer] },
    }));
    return;
  }
  // The operator stops on an error until someone changes the host; the tests never need it to recover.
  if (status.operationalStatus === 'error') return;

  const elapsed = ctx.sightings.elapsed(`${key}${state}`);
  if (elapsed < ctx.stepMs) return;

  const failure = failureWanted(ctx, host, state);
  if (failure !== undefined) {
    await fail(ctx, host, state, failure);
    return;
  }

  const name = ironicNodeName(host);
  switch (state) {
    case '':
      await setStatus(ctx, host, { ...healthy(host, 'registering'), operationalStatus: 'discovered' });
      return;
    case 'registering': {
      const problem = await credentialsProblem(ctx, host);
      if (problem !== undefined) {
        if (status.errorMessage !== problem) {
          await setStatus(ctx, host, { operationalStatus: 'discovered', errorMessage: problem, lastUpdated: now() });
        }
        return;
      }
      let node: IronicNode | undefined;
      if (ctx.ironic) {
        await ctx.ironic.enroll({
          name,
          driver: 'fake-hardware',
          interfaces: { deploy_interface: 'fake', inspect_interface: 'fake', boot_interface: 'fake' },
          properties: { cpus: 4, memory_mb: 8192, local_gb: 100 },
        });
        if (spec.bootMACAddress !== undefined) await ctx.ironic.ensurePort(name, spec.bootMACAddress);
        node = await ctx.ironic.manage(name, { wait: ironicWait });
      }
      await setStatus(ctx, host, healthy(host, 'inspecting', node));
      return;
    }
    case 'inspecting': {
      const node = ctx.ironic ? await ctx.ironic.inspect(name, { wait: ironicWait }) : undefined;
      await setStatus(ctx, host, healthy(host, 'available', node));
      return;
    }
    case 'available': {
      let node: IronicNode | undefined;
      if (ctx.ironic) {
        node = await ctx.ironic.get(name);
        if (node.provision_state !== 'available') node = await ctx.ironic.provide(name, { wait: ironicWait });
      }
      if (spec.image?.url !== undefined && spec.online !== false) {
        await setStatus(ctx, host, healthy(host, 'provisioning', node));
      } else if (status.operationalStatus !== 'OK' || (node !== undefined && status.poweredOn === undefined)) {
        await setStatus(ctx, host, healthy(host, 'available', node));
      }
      return;
    }
    case 'provisioning': {
      let node: IronicNode | undefined;
      if (ctx.ironic) {
        const image = spec.image ?? {};
        await ctx.ironic.setInstanceInfo(name, {
          imageSource: image.url ?? 'http://127.0.0.1:1/unset',
          ...(image.checksum === undefined
            ? {}
            : { imageOsHash: { algorithm: image.checksumType ?? 'sha256', value: image.checksum } }),
        });
        node = await ctx.ironic.deploy(name, { wait: ironicWait });
        node = await matchPower(ctx, name, node, spec.online !== false);
      }
      await setStatus(ctx, host, healthy(host, 'provisioned', node));
      return;
    }
    case 'provisioned': {
      if (spec.image?.url === undefined) {
        await setStatus(ctx, host, { provisioning: { ...(status.provisioning as object), state: 'deprovisioning' } });
        return;
      }
      if (ctx.ironic) {
        // Reflects the node, as the operator does on every resync: power changes made in Ironic show here.
        const node = await matchPower(ctx, name, await ctx.ironic.get(name), spec.online !== false);
        const poweredOn = node.power_state === 'power on';
        if (status.poweredOn !== poweredOn) await setStatus(ctx, host, { poweredOn, lastUpdated: now() });
      }
      return;
    }
    case 'deprovisioning': {
      const node = ctx.ironic ? await ctx.ironic.undeploy(name, { wait: ironicWait }) : undefined;
      await setStatus(ctx, host, healthy(host, 'available', node));
      return;
    }
    default:
      return;
  }
}

/** The operator keeps a host's power as spec.online says. */
async function matchPower(ctx: HostContext, name: string, node: IronicNode, online: boolean): Promise<IronicNode> {
  if (!ctx.ironic || node.target_power_state !== null) return node;
  if (online && node.power_state !== 'power on') return ctx.ironic.powerOn(name, { wait: ironicWait });
  if (!online && node.power_state === 'power on') return ctx.ironic.powerOff(name, { wait: ironicWait });
  return node;
}

async function deleteHost(ctx: HostContext, host: KubeObject, state: string): Promise<void> {
  if (!(host.metadata.finalizers ?? []).includes(hostFinalizer)) return;
  if (state !== 'deleting') {
    await setStatus(ctx, host, { provisioning: { ...(statusOf(host).provisioning as object), state: 'deleting' } });
    return;
  }
  if (ctx.sightings.elapsed(`${host.metadata.uid ?? ''}/deleting`) < ctx.stepMs) return;
  if (ctx.ironic) {
    const name = ironicNodeName(host);
    const node = await ctx.ironic.find(name);
    if (node !== undefined) {
      if (['active', 'deploy failed', 'wait call-back'].includes(node.provision_state)) {
        await ctx.ironic.undeploy(name, { wait: ironicWait });
      }
      await ctx.ironic.delete(name);
    }
  }
  await ctx.kube.update(refOfHost(host), (h) => ({
    ...h,
    metadata: { ...h.metadata, finalizers: (h.metadata.finalizers ?? []).filter((f) => f !== hostFinalizer) },
  }));
}

/** An Ironic step that failed for good puts the host in error with Ironic's words, as the operator does. */
export async function reportHostError(ctx: HostContext, host: KubeObject, err: unknown): Promise<void> {
  const message = err instanceof Error ? err.message : String(err);
  if (err instanceof PeerError && err.retryable) {
    ctx.report(`BareMetalHost ${host.metadata.name}: ${message} (retrying)`);
    return;
  }
  ctx.report(`BareMetalHost ${host.metadata.name}: ${message}`);
  const current = await ctx.kube.find(refOfHost(host));
  if (current !== undefined) await fail(ctx, current, stateOf(current), message);
}
