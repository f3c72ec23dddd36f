/**
 * What the fleet rollout asks of its activities, on the global task queue. The worker's activity object must satisfy
 * this type (checked where it is wired).
 */
import type { OperationType, RolloutSelector, RolloutSiteEnded, RolloutSiteNote } from '../domain/operations.ts';

export interface RolloutSitePage {
  /** Selected sites in name order, each with its time zone when its spec names one. */
  sites: { name: string; timeZone?: string }[];
  /** Sites named by the selector that do not exist or lack its labels. */
  missing: RolloutSiteNote[];
  /** Where the next page starts; absent on the last page. */
  continue?: string;
}

/** Sites a rollout starts in one go, each with its operation's input (the rollout's id is added to it). */
export interface RolloutSitesStart {
  /** The rollout's workflow id: where the sites report their end. */
  rollout: string;
  /** The rollout's id, the IcnRolloutId search attribute of every site operation it starts. */
  rolloutId: string;
  operation: OperationType;
  /** The rollout's own task queue: its site operations run beside it. */
  taskQueue: string;
  sites: { site: string; input: object }[];
  /** Starts waiting on the server at once; absent: the activity's default. */
  startsInFlight?: number;
}

/** Per site: started (or found already started by this rollout, a retried attempt), or busy with why. */
export type RolloutSitesStarted = Record<string, { started: true } | { busy: string }>;

export interface FleetActivities {
  /** One page of the sites a rollout's selector picks, from the inventory. */
  resolveRolloutSites(input: { selector: RolloutSelector; limit: number; continue?: string }): Promise<RolloutSitePage>;
  /**
   * Which of these sites run another kind of operation right now (a patch while an install runs), as site → reason.
   * The same kind needs no look-up: its business-key workflow id refuses a second start.
   */
  findBusySites(input: { sites: string[]; operation: OperationType }): Promise<Record<string, string>>;
  /**
   * Starts these sites' operations (each under its business-key id, with the rollout's search attributes), many at
   * once: the server records a workflow's child starts one after another (≈ 30 a second on the dev server, 10 under
   * load), independent starts in parallel (≈ 125 a second). A site running the same operation already is busy.
   */
  startRolloutSites(input: RolloutSitesStart): Promise<RolloutSitesStarted>;
  /**
   * Tells the rollout how one of its site operations ended (the rollout's signal, with the other ends its worker
   * reports within 200 ms; nothing if the rollout is gone). Run by the site operation itself, as a local activity: one
   * marker in its history, no extra workflow task.
   */
  reportSiteOutcome(input: { rollout: string; ended: RolloutSiteEnded }): Promise<void>;
  /**
   * The rollout's site operations that closed without reporting: terminated by an operator or timed out by the
   * server. The others report themselves; a run that continued as new only learns of these by asking.
   */
  findUnreportedSites(input: { rolloutId: string; operation: OperationType }): Promise<RolloutSiteEnded[]>;
}
