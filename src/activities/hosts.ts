/**
 * A host's maintenance as an operator does it by hand: cordon, drain, change the packages through the BPA, reboot
 * through the BMC when a package asks for it, wait for the node to be Ready, uncordon, check the versions, note it in
 * the inventory. One activity per host, heartbeating the steps done so far: a retried attempt (a worker died, a peer
 * blinked) resumes after the last step done instead of draining or rebooting twice. A host is a few history events,
 * whatever the number of steps, so a 1,000-host site's patch keeps a small history.
 */
import { ApplicationFailure, Context } from '@temporalio/activity';
import type { BpaClient } from '../clients/bpa/index.ts';
import type { BpaHost } from '../domain/bpa.ts';
import type { IronicClient } from '../clients/ironic/index.ts';
import {
  cordonNode,
  deleteNode,
  drainNode,
  findHostNode,
  type KubeconfigSource,
  type KubernetesClient,
  type NodeObject,
  uncordonNode,
  waitNodeReady,
} from '../clients/kubernetes/index.ts';
import { HostPatchInput, type HostPatchResult, ironicNodeName } from '../domain/plan.ts';
import type { SiteSpec, SiteStatus } from '../domain/site.ts';
import type { SecretRepository } from '../store/secrets.ts';
import type { HostActivities } from '../workflows/site-activities.ts';
import { activityJobId, type BpaAccess, keepAliveMs as stepKeepAliveMs } from './bpm.ts';
import { toActivityFailure } from './errors.ts';
import { ClusterClients } from './cluster-clients.ts';

export interface HostActivityDeps {
  kube: (kubeconfig: KubeconfigSource) => KubernetesClient;
  ironic: (url: string) => IronicClient;
  secrets: Pick<SecretRepository, 'reveal'>;
  sites: { get(name: string): Promise<{ spec: SiteSpec; status?: SiteStatus }> };
  bpa: BpaAccess;
  /** Writes the host's state and versions into the site's status (the inventory activity's merge). */
  recordHostState: (input: {
    site: string;
    host: string;
    state: string;
    packages?: Record<string, string>;
    rebootedBy?: string;
  }) => Promise<void>;
  /** How long a node may take to be Ready after a reboot. */
  readyTimeoutMs?: number;
  heartbeatIntervalMs?: number;
}

/** A patch's steps, in the order they run. */
type Step = 'cordon' | 'drain' | 'packages' | 'reboot' | 'ready' | 'uncordon' | 'verify' | 'record';

/** What a host's patch reports in its heartbeat and resumes from. */
interface PatchProgress {
  node: string;
  done: Step[];
  packages?: Record<string, string>;
  rebooted?: boolean;
}

/** metal3 names a BareMetalHost's Ironic node `<namespace>~<name>`; without Cluster-API the BPM enrols `<site>-<host>`. */
export function hostIronicNode(site: string, host: string, provisioner: SiteSpec['cluster']['provisioner']): string {
  return provisioner === 'cluster-api' ? `site-${site}~${host}` : ironicNodeName(site, host);
}

/** Waits for every step, then fails with the first failure in the order given: no step runs on once the host fails. */
async function allSteps(steps: Promise<unknown>[]): Promise<void> {
  for (const outcome of await Promise.allSettled(steps)) if (outcome.status === 'rejected') throw outcome.reason;
}

/** Who cordoned a node for maintenance: the patch and its rollback share it, so either may undo the other's cordon. */
const cordonMark = 'icn-host-maintenance';

export function createHostActivities(deps: HostActivityDeps) {
  const readyTimeoutMs = deps.readyTimeoutMs ?? 20 * 60_000;
  const keepAliveMs = (): number => deps.heartbeatIntervalMs ?? stepKeepAliveMs();

  const clusters = new ClusterClients(deps.kube, deps.secrets);
  /** The application cluster for the length of `fn`, its client shared with the worker's other activities. */
  const onCluster = <T>(secret: string, scrub: string[], fn: (kube: KubernetesClient) => Promise<T>): Promise<T> =>
    clusters.with(secret, scrub, fn);

  async function hostNode(kube: KubernetesClient, site: string, host: string): Promise<NodeObject> {
    const node = await findHostNode(kube, { site, host });
    if (!node) {
      throw ApplicationFailure.create({
        type: 'NodeNotFound',
        message: `no node of host "${host}" in site "${site}"'s cluster (by metal3 providerID or hostname)`,
        nonRetryable: false,
      });
    }
    return node;
  }

  /** What a host runs now, by package, as its BPA recorded it (the latest record of each package). */
  async function hostVersions(bpa: BpaClient, host: string): Promise<Record<string, string>> {
    const latest = new Map<string, { version: string; at: string }>();
    for (const p of await bpa.installed(host)) {
      const seen = latest.get(p.name);
      if (!seen || seen.at <= p.at) latest.set(p.name, { version: p.version, at: p.at });
    }
    return Object.fromEntries([...latest].map(([name, p]) => [name, p.version]));
  }

  const activities: HostActivities = {
    async patchHost(raw) {
      const ctx = Context.current();
      const scrub: string[] = [];
      try {
        const input = HostPatchInput.parse(raw);
        const resumed = ctx.info.heartbeatDetails as PatchProgress | undefined;
        // Round trips that do not depend on each other run at once: a host's own time is the orchestration's
        // overhead on it, at every host of every site.
        const site = deps.sites.get(input.site);
        // Heard where it is awaited; a cluster that cannot be reached first leaves it unheard.
        site.catch(() => undefined);
        let siteBpa: Promise<BpaClient> | undefined;
        const bpaOf = (): Promise<BpaClient> => {
          if (!siteBpa) {
            siteBpa = site.then(({ spec }) => deps.bpa.siteBpa(input.site, input.bpaUrl, spec)).then(({ bpa }) => bpa);
            siteBpa.catch(() => undefined);
          }
          return siteBpa;
        };
        // The BPA made ready for the job (its client, the host's SSH key handed over) while the node is found,
        // cordoned and drained. Its failure is the packages step's, reported there.
        let jobPeer: Promise<{ bpa: BpaClient; hosts: BpaHost[] }> | undefined;
        const prepareJob = () => {
          if (input.packages.length === 0 || resumed?.done.includes('packages') === true) return undefined;
          if (!jobPeer) {
            const bpa = bpaOf();
            jobPeer = site
              .then(({ spec }) => deps.bpa.bpaHosts(input.site, spec, bpa, [input.host]))
              .then(async (hosts) => ({ bpa: await bpa, hosts }));
            jobPeer.catch(() => undefined);
          }
          return jobPeer;
        };
        // A patch gets its job ready at once; a rollback first looks whether the patch reached the host at all.
        if (input.action === 'install') void prepareJob();
        return await onCluster(input.kubeconfigSecret, scrub, async (kube) => {
          const [{ spec, status }, found] = await Promise.all([
            site,
            resumed?.node ?? hostNode(kube, input.site, input.host),
          ]);
          // As listed a moment ago (not when resumed): the cordon writes it without reading it again.
          const [node, listed] = typeof found === 'string' ? [found, undefined] : [found.metadata.name, found];
          const progress: PatchProgress = resumed ?? { node, done: [] };
          // Each heartbeat is encoded (and encrypted) when made, sent or not, and the SDK sends at most one every
          // 0.8 × the timeout: progress (a step done, a job's events, a drain's evictions) is beaten at most every 2 s,
          // the latest of it, and once more when the attempt ends, so that a retry resumes after the last step done.
          // The first beat waits two keep-alives (two thirds of the timeout): the SDK sends an attempt's first
          // heartbeat at once, so one at the start would cost the server a write per host started (10,000 at once
          // when a fleet starts), and a host done within that time needs none. A retry that finds no details redoes
          // the steps, each idempotent (the job's id is the activity's, the reboot is in the inventory).
          const keepAlive = keepAliveMs();
          const firstBeatAt = Date.now() + 2 * keepAlive;
          let pending: NodeJS.Timeout | undefined;
          const flush = (): void => {
            clearTimeout(pending);
            pending = undefined;
            ctx.heartbeat(progress);
          };
          const beat = (): void => {
            pending ??= setTimeout(flush, Math.max(2000, firstBeatAt - Date.now()));
          };
          // Then a beat every keep-alive, so that one is always waiting when the SDK may send the next.
          let timer = setTimeout(() => {
            flush();
            timer = setInterval(flush, keepAlive);
          }, firstBeatAt - Date.now());
          /** The step's result, or undefined when an earlier attempt did it. */
          const step = async <T>(name: Step, run: () => Promise<T>): Promise<T | undefined> => {
            if (progress.done.includes(name)) return undefined;
            const result = await run();
            progress.done.push(name);
            beat();
            return result;
          };
          try {
            if (input.action === 'rollback' && progress.done.length === 0) {
              // A host the patch never reached (or already rolled back) keeps serving: no drain, no reboot.
              const versions = await hostVersions(await bpaOf(), input.host);
              if (!input.packages.some((p) => versions[p.name] === p.version)) {
                // The patch may have cordoned it before it failed: that cordon goes, an operator's stays.
                await uncordonNode(kube, node, { by: cordonMark });
                return { host: input.host, node, packages: versions, rebooted: false } satisfies HostPatchResult;
              }
            }
            const bpaReady = prepareJob();
            let cordonedNow = false;
            await step('cordon', async () => {
              await cordonNode(kube, node, { by: cordonMark, ...(listed && { known: listed }) });
              cordonedNow = true;
            });
            await step('drain', () =>
              drainNode(kube, node, {
                timeoutMs: input.drainTimeoutSeconds * 1000,
                // Cordoned a moment ago: no second read of the node. A resumed attempt cordons again, in case
                // the node was uncordoned while no attempt ran.
                cordoned: cordonedNow,
                onProgress: () => {
                  beat();
                },
              }),
            );
            await step('packages', async () => {
              if (!bpaReady) return;
              const { bpa, hosts } = await bpaReady;
              // Heartbeats stay this patch's progress while the job runs: a retry resumes from them.
              const job = await deps.bpa.runJob(
                bpa,
                activityJobId(`-${input.action}`),
                { action: input.action, hosts, packages: input.packages },
                () => {
                  beat();
                },
              );
              if (job.state === 'failed') {
                throw deps.bpa.jobFailure(input.site, `${input.action} on ${input.host}`, job);
              }
            });
            await step('reboot', async () => {
              if (!input.reboot) return;
              const ironic = deps.ironic(input.ironicUrl);
              const name = hostIronicNode(input.site, input.host, spec.cluster.provisioner);
              // Heartbeats reach the server at most every 90 s: a retry after a worker died may not know of a
              // reboot it asked for. The inventory, written right after the request, does.
              const rebootId = activityJobId(`-${input.action}-reboot`);
              const requested = status?.hosts?.[input.host]?.rebootedBy !== rebootId;
              if (requested) await ironic.requestReboot(name);
              // Both after the request, neither waiting on the other: a record before it could tell a retry of a
              // reboot never asked for.
              await allSteps([
                requested
                  ? deps.recordHostState({
                      site: input.site,
                      host: input.host,
                      state: 'Rebooting',
                      rebootedBy: rebootId,
                    })
                  : Promise.resolve(),
                ironic.waitForPowerState(name, 'power on', {
                  timeoutMs: readyTimeoutMs,
                  onPoll: () => {
                    beat();
                  },
                  signal: ctx.cancellationSignal,
                }),
              ]);
              progress.rebooted = true;
            });
            const ready = await step('ready', () =>
              waitNodeReady(kube, node, { timeoutMs: readyTimeoutMs, signal: ctx.cancellationSignal }),
            );
            // Independent: the node back in service, and what the BPA recorded as installed.
            const uncordoned = step('uncordon', () =>
              uncordonNode(kube, node, { by: cordonMark, ...(ready && { known: ready }) }),
            );
            const verified = step('verify', async () => {
              const versions = await hostVersions(await bpaOf(), input.host);
              if (input.action === 'install') {
                const wrong = input.packages.filter((p) => versions[p.name] !== p.version);
                if (wrong.length > 0) {
                  throw ApplicationFailure.create({
                    type: 'VerifyFailed',
                    message: `host ${input.host} does not run ${wrong.map((p) => `${p.name} ${p.version} (has ${versions[p.name] ?? 'none'})`).join(', ')}`,
                    nonRetryable: true,
                  });
                }
              }
              progress.packages = versions;
            });
            await allSteps([uncordoned, verified]);
            await step('record', () =>
              deps.recordHostState({
                site: input.site,
                host: input.host,
                state: 'Ready',
                ...(progress.packages && { packages: progress.packages }),
              }),
            );
          } finally {
            // The first beat's timeout or the keep-alive interval: either is cleared by clearInterval.
            clearInterval(timer);
            if (pending !== undefined) flush();
          }
          return {
            host: input.host,
            node,
            packages: progress.packages ?? {},
            rebooted: progress.rebooted ?? false,
          } satisfies HostPatchResult;
        });
      } catch (err) {
        throw toActivityFailure(err, { secrets: scrub });
      }
    },

    async drainHost(input) {
      const ctx = Context.current();
      const scrub: string[] = [];
      try {
        await onCluster(input.kubeconfigSecret, scrub, async (kube) => {
          const node = await findHostNode(kube, input);
          // A host whose node is already gone has nothing to drain (a retried removal).
          if (!node) return;
          const timer = setInterval(() => {
            ctx.heartbeat(node.metadata.name);
          }, keepAliveMs());
          try {
            await drainNode(kube, node.metadata.name, {
              timeoutMs: (input.drainTimeoutSeconds ?? 600) * 1000,
              onProgress: () => {
                ctx.heartbeat(node.metadata.name);
              },
            });
          } finally {
            clearInterval(timer);
          }
        });
      } catch (err) {
        throw toActivityFailure(err, { secrets: scrub });
      }
    },

    async removeHostNode(input) {
      const scrub: string[] = [];
      try {
        await onCluster(input.kubeconfigSecret, scrub, async (kube) => {
          const node = await findHostNode(kube, input);
          if (node) await deleteNode(kube, node.metadata.name);
        });
      } catch (err) {
        throw toActivityFailure(err, { secrets: scrub });
      }
    },
  };
  return activities;
}
