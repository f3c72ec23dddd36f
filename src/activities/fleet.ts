/**
 * The fleet rollout's activities, on the global task queue: which sites a selector picks (from the inventory, a page
 * at a time so that no single result grows with the fleet) and which sites are busy with another kind of operation.
 */
import { Context } from '@temporalio/activity';
import type { Client } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  type OperationType,
  type RolloutSelector,
  type RolloutSiteEnded,
  type RolloutSiteNote,
  siteOperationId,
  SiteOperationType,
  workflowTypes,
} from '../domain/operations.ts';
import { rolloutAttribute, siteAttribute } from '../temporal/search-attributes.ts';
import { siteOperationStart } from '../temporal/site-operation-start.ts';
import type { Labels } from '../domain/meta.ts';
import type { Store } from '../store/index.ts';
import type { StoredObject } from '../store/resources.ts';
import { SiteOutcomeReports } from './site-outcome-reports.ts';
import type { SiteSpec, SiteStatus } from '../domain/site.ts';
import type {
  FleetActivities,
  RolloutSitePage,
  RolloutSitesStart,
  RolloutSitesStarted,
} from '../workflows/rollout-activities.ts';

export interface FleetActivityDeps {
  store: Store;
  /** Where running operations are looked up; by default the client of the worker that runs the activity. */
  temporal?: () => Client;
}

const maxPage = 1000;
/** Sites per visibility query: well within the query's length limits. */
const busyQueryBatch = 200;
/**
 * Starts each bulk activity has waiting on the server at once. Few: a flood of starts slows the server's history
 * service past the 1 s its matching gives it to record a site's first task as handed to an idle worker, and such a
 * task is lost until its 30 s timeout (temporalio/temporal#11733). Measured, 1,000 sites × 1 host at 20 s steps,
 * three runs each: 32 in flight lost 7, 1 and 0 first tasks (wall 64.6 s on average), 8 lost none (60.2 s); the sites
 * started a little later (mean 10 s against 7 s) but their first tasks ran sooner (max 19 s against 32-37 s).
 */
const startsInFlight = 8;

const hasLabels = (labels: Labels, wanted: Labels | undefined) =>
  Object.entries(wanted ?? {}).every(([key, value]) => labels[key] === value);

const siteOf = (stored: StoredObject<SiteSpec, SiteStatus>): RolloutSitePage['sites'][number] => {
  // Sites stored before the field existed have no time zone, and partial specs (tests) may lack it as well.
  const timeZone = (stored.spec as Partial<SiteSpec> | undefined)?.timeZone;
  return timeZone === undefined ? { name: stored.metadata.name } : { name: stored.metadata.name, timeZone };
};

export function createFleetActivities(deps: FleetActivityDeps) {
  const temporal = deps.temporal ?? (() => Context.current().client);

  return {
    async resolveRolloutSites(input: {
      selector: RolloutSelector;
      limit: number;
      continue?: string;
    }): Promise<RolloutSitePage> {
      const { selector } = input;
      const limit = Math.min(Math.max(Math.trunc(input.limit), 1), maxPage);
      if (selector.names === undefined) {
        const page = await deps.store.sites.list({
          matchLabels: selector.matchLabels ?? {},
          limit,
          ...(input.continue !== undefined && { continue: input.continue }),
        });
        return {
          sites: page.items.map(siteOf),
          missing: [],
          ...(page.continue !== undefined && { continue: page.continue }),
        };
      }
      // Named sites keep the operator's order; the token is where the next page starts in that list.
      const from = input.continue === undefined ? 0 : Number(input.continue);
      if (!Number.isInteger(from) || from < 0) throw new Error(`"${input.continue ?? ''}" is not a page token`);
      const names = selector.names.slice(from, from + limit);
      const found = await Promise.all(names.map((name) => deps.store.sites.find(name)));
      const sites: RolloutSitePage['sites'] = [];
      const missing: RolloutSiteNote[] = [];
      names.forEach((name, i) => {
        const stored = found[i];
        if (!stored) missing.push({ site: name, reason: 'no such site' });
        else if (!hasLabels(stored.metadata.labels, selector.matchLabels)) {
          missing.push({ site: name, reason: 'lacks the selector labels' });
        } else sites.push(siteOf(stored));
      });
      const next = from + limit;
      return { sites, missing, ...(next < selector.names.length && { continue: String(next) }) };
    },

    /**
     * One visibility query per batch (sites running any operation, by the IcnSite search attribute) instead of a
     * describe per site and operation: at 10,000 sites that was 40,000 calls on the server. Visibility trails a
     * start by milliseconds; the business-key ids still refuse a second start of the same operation.
     */
    async findBusySites(input: { sites: string[]; operation: OperationType }): Promise<Record<string, string>> {
      const client = temporal();
      const busy: Record<string, string> = {};
      const wanted = new Set(input.sites);
      for (let i = 0; i < input.sites.length; i += busyQueryBatch) {
        const names = input.sites.slice(i, i + busyQueryBatch).map((site) => `'${site.replaceAll("'", '')}'`);
        const query = `ExecutionStatus = 'Running' AND ${siteAttribute.name} IN (${names.join(', ')})`;
        for await (const wf of client.workflow.list({ query })) {
          const site = wf.typedSearchAttributes.get(siteAttribute);
          const op = SiteOperationType.options.find((o) => wf.workflowId === siteOperationId(site ?? '', o));
          if (site === undefined || !wanted.has(site) || op === undefined || op === input.operation) continue;
          busy[site] = `busy with ${op} (${wf.workflowId})`;
        }
      }
      return busy;
    },

    ...createRolloutSiteActivities(temporal),
  } satisfies FleetActivities;
}

/**
 * How a rollout starts its sites in bulk and hears of their ends: their reports, and a look for those that closed
 * without one.
 */
export function createRolloutSiteActivities(
  temporal: () => Client = () => Context.current().client,
): Pick<FleetActivities, 'startRolloutSites' | 'reportSiteOutcome' | 'findUnreportedSites'> {
  // One per worker: the site operations it runs report together.
  const reports = new SiteOutcomeReports();
  return {
    async startRolloutSites(input: RolloutSitesStart): Promise<RolloutSitesStarted> {
      const client = temporal();
      const type = workflowTypes[input.operation];
      const result: RolloutSitesStarted = {};
      // Not eager starts (requestEagerStart): they spare a site's first task the server's matching, which loses a
      // few at a fleet's start (it gives history 1 s to record a task handed to a waiting worker: temporalio/
      // temporal#11733; those sites wait out their 30 s task timeout), but they give the starting worker every site
      // it has a slot for, and the sites' later tasks stick to it. Measured at 10,000 sites × 3 (one run): the last
      // site started after 1,053 s (259 s in an earlier run without), 207 s between a site's hosts on average.
      const startOne = async ({ site, input: args }: RolloutSitesStart['sites'][number]): Promise<void> => {
        const start = siteOperationStart(site, input.operation, input.rolloutId);
        const { workflowId } = start;
        try {
          await client.workflow.start(type, {
            ...start,
            taskQueue: input.taskQueue,
            args: [{ ...args, rollout: input.rollout }],
          });
          result[site] = { started: true };
        } catch (err) {
          if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
          // A retried attempt finds the sites its first attempt started: they are this rollout's, not busy.
          const running = await client.workflow.getHandle(workflowId).describe();
          result[site] =
            running.typedSearchAttributes.get(rolloutAttribute) === input.rolloutId
              ? { started: true }
              : { busy: `${workflowId} is already running` };
        }
      };
      const ctx = Context.current();
      let next = 0;
      const lane = async (): Promise<void> => {
        for (let site = input.sites[next++]; site !== undefined; site = input.sites[next++]) {
          await startOne(site);
          ctx.heartbeat(next);
        }
      };
      const lanes = Math.max(1, Math.min(input.startsInFlight ?? startsInFlight, input.sites.length));
      await Promise.all(Array.from({ length: lanes }, lane));
      return result;
    },

    async reportSiteOutcome(input: { rollout: string; ended: RolloutSiteEnded }): Promise<void> {
      await reports.report(temporal(), input.rollout, input.ended);
    },

    async findUnreportedSites(input: { rolloutId: string; operation: OperationType }): Promise<RolloutSiteEnded[]> {
      const type = workflowTypes[input.operation];
      const query =
        `WorkflowType = '${type}' AND ${rolloutAttribute.name} = '${input.rolloutId.replaceAll("'", '')}' ` +
        `AND ExecutionStatus IN ('Terminated', 'TimedOut')`;
      const ended: RolloutSiteEnded[] = [];
      for await (const wf of temporal().workflow.list({ query })) {
        const site = wf.typedSearchAttributes.get(siteAttribute);
        if (site === undefined) continue;
        const how = wf.status.name === 'TERMINATED' ? 'terminated' : 'timed out by the server';
        ended.push({ site, outcome: 'failed', reason: `${wf.workflowId} was ${how}` });
      }
      return ended;
    },
  };
}
