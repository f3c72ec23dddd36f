/**
 * The inventory side of site operations, on the global task queue: what a site should be (its spec and profile,
 * resolved once when an operation starts) and what it is (its status, written as the operation goes). Status writes
 * are merges that land only on the version they read (and are redone on another), a host's state a merge of its own
 * entry in one statement: hosts provisioned in parallel report at the same time, and a plain read-modify-write would
 * lose all but one of them.
 */
import { isDeepStrictEqual } from 'node:util';
import { InstalledSitePlan, PatchPlan, SitePlan } from '../domain/plan.ts';
import { HostStatus, SiteStatus } from '../domain/site.ts';
import { type Store, StoreError } from '../store/index.ts';
import { toActivityFailure } from './errors.ts';
import { sharedRead } from './shared-reads.ts';

export interface InventoryActivityDeps {
  store: Store;
}

export interface HostStateInput {
  site: string;
  host: string;
  state: string;
  /** Installed package versions by name; left as recorded when omitted (a reboot does not change them). */
  packages?: Record<string, string>;
  /** The step that has just asked for the host's reboot; left as recorded when omitted. */
  rebootedBy?: string;
}

/** Writers of one site's status at once are its hosts in flight: each round lets at least one of them land. */
const maxStatusAttempts = 1000;

/** JSON as the database stores it: no undefined members, so that "unchanged" compares true. */
const plain = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

/**
 * How long a profile read serves the sites that ask for it alike. Profiles are immutable per version; this only
 * bounds how long a version deleted and published again with other content could still be served (to patches that
 * start within it).
 */
const profileReadTtlMs = 10_000;

export function createInventoryActivities(deps: InventoryActivityDeps) {
  // A rollout's sites all load the same two profiles within seconds: one query each serves them all.
  const profile = sharedRead((name: string, version: string) => deps.store.profiles.get(name, version), {
    ttlMs: profileReadTtlMs,
  });
  const artifactSizes = sharedRead(
    (name: string, version: string) => deps.store.profiles.artifactSizes(name, version),
    { ttlMs: profileReadTtlMs },
  );

  /**
   * Applies `change` to the site's status atomically; writes (and bumps resourceVersion) only on a real change. A write
   * that lost the race to another is redone on what that one wrote. Optimistic rather than a row lock: two statements
   * and no connection held between them, where a locked transaction took five round trips on a held connection
   * (measured: with 10,000 sites in flight the pool's connections were all held, waiting on the worker's busy loop).
   */
  async function updateStatus(
    site: string,
    change: (current: SiteStatus | undefined) => SiteStatus,
    /** The site as the caller has just read it: the first attempt starts from it instead of reading it again. */
    read?: Awaited<ReturnType<Store['sites']['get']>>,
  ): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const stored = attempt === 1 && read ? read : await deps.store.sites.get(site);
      const current = stored.status;
      const next = plain(SiteStatus.parse(change(current)));
      if (current !== undefined && isDeepStrictEqual(plain(current), next)) return;
      try {
        await deps.store.sites.setStatus(site, next, stored.metadata.resourceVersion);
        return;
      } catch (err) {
        if (!(err instanceof StoreError && err.code === 'Conflict') || attempt >= maxStatusAttempts) throw err;
      }
    }
  }

  return {
    async loadSitePlan(site: string): Promise<SitePlan> {
      try {
        const stored = await deps.store.sites.get(site);
        const ref = stored.spec.softwareProfile;
        const found = await profile(ref.name, ref.version).catch((err: unknown) => {
          if (err instanceof StoreError && err.code === 'NotFound') {
            throw new StoreError(
              'MissingReference',
              `site "${site}" runs software profile ${ref.name} ${ref.version}, which does not exist`,
              'spec.softwareProfile',
            );
          }
          throw err;
        });
        return SitePlan.parse({
          site,
          spec: stored.spec,
          profile: { name: ref.name, version: ref.version, spec: found.spec },
        });
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    async loadPatchPlan(input: {
      site: string;
      profile: { name: string; version: string };
      workflowId: string;
    }): Promise<PatchPlan> {
      try {
        const stored = await deps.store.sites.get(input.site);
        const installed = stored.status?.installedProfile;
        if (!installed) {
          throw new StoreError(
            'Invalid',
            `site "${input.site}" has no installed profile: install it before patching`,
            'status.installedProfile',
          );
        }
        const [from, to, artifactBytes] = await Promise.all([
          profile(installed.name, installed.version),
          profile(input.profile.name, input.profile.version),
          artifactSizes(input.profile.name, input.profile.version),
        ]);
        const plan = PatchPlan.parse({
          plan: { site: input.site, spec: stored.spec, profile: { ...input.profile, spec: to.spec } },
          installed: { ...installed, spec: from.spec },
          artifactBytes,
        });
        await updateStatus(
          input.site,
          (current) => ({
            ...current,
            phase: 'Patching',
            operation: { workflowId: input.workflowId, type: 'patch' },
          }),
          stored,
        );
        return plan;
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    async loadInstalledPlan(site: string): Promise<InstalledSitePlan> {
      try {
        const stored = await deps.store.sites.get(site);
        const installed = stored.status?.installedProfile;
        if (!installed || stored.status?.phase === 'Installing') {
          throw new StoreError('Invalid', `site "${site}" is not installed yet`, 'status.installedProfile');
        }
        const installedProfile = await profile(installed.name, installed.version);
        const kubernetesVersion = stored.status?.kubernetesVersion ?? stored.spec.cluster.kubernetesVersion;
        // The cluster as it runs: an upgrade since the spec was written must not be undone by a resize.
        const spec = { ...stored.spec, cluster: { ...stored.spec.cluster, kubernetesVersion } };
        return InstalledSitePlan.parse({
          plan: { site, spec, profile: { ...installed, spec: installedProfile.spec } },
          installedHosts: Object.keys(stored.status?.hosts ?? {}).sort(),
          kubernetesVersion,
        });
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    async forgetHost(input: { site: string; host: string }): Promise<void> {
      try {
        await updateStatus(input.site, (current) => {
          const hosts = Object.fromEntries(Object.entries(current?.hosts ?? {}).filter(([h]) => h !== input.host));
          return { ...current, phase: current?.phase ?? 'Pending', hosts };
        });
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    /** Merges into the stored status: given fields replace, hosts merge by name, the phase is always set. */
    async recordSiteStatus(input: { site: string; status: Partial<SiteStatus> }): Promise<void> {
      try {
        await updateStatus(input.site, (current) => ({
          ...current,
          ...input.status,
          phase: input.status.phase ?? current?.phase ?? 'Pending',
          ...((current?.hosts ?? input.status.hosts) && { hosts: { ...current?.hosts, ...input.status.hosts } }),
        }));
      } catch (err) {
        throw toActivityFailure(err);
      }
    },

    async recordHostState(input: HostStateInput): Promise<void> {
      try {
        // What is omitted stays as recorded.
        const entry = HostStatus.parse({
          state: input.state,
          ...(input.packages && { packages: input.packages }),
          ...(input.rebootedBy && { rebootedBy: input.rebootedBy }),
        });
        await deps.store.sites.mergeStatusEntry(input.site, 'hosts', input.host, entry, { phase: 'Pending' });
      } catch (err) {
        throw toActivityFailure(err);
      }
    },
  };
}

export type InventoryActivities = ReturnType<typeof createInventoryActivities>;
