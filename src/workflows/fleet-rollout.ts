import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  defineQuery,
  defineSignal,
  defineUpdate,
  getExternalWorkflowHandle,
  isCancellation,
  makeContinueAsNewFunc,
  ParentClosePolicy,
  patched,
  proxyActivities,
  setHandler,
  sleep,
  startChild,
  upsertMemo,
  workflowInfo,
} from '@temporalio/workflow';
import {
  pauseSignal,
  resumeSignal,
  rolloutQuery,
  rolloutSiteEndedSignal,
  rolloutSitesEndedSignal,
  rolloutUpdates,
  siteOperationId,
  workflowTypes,
} from '../domain/keys.ts';
import type {
  FailureBudget,
  FleetRolloutInput,
  OperationProgress,
  RecordedProgress,
  RolloutCarry,
  RolloutConcurrency,
  RolloutPause,
  RolloutRequest,
  RolloutResult,
  RolloutResume,
  RolloutSiteEnded,
  RolloutSiteNote,
  RolloutStrategy,
  RolloutView,
} from '../domain/operations.ts';
import { siteOperationStart } from '../temporal/site-operation-start.ts';
import { SitesGauge } from './metrics-sink.ts';
import { progress } from './progress.ts';
import type { FleetActivities } from './rollout-activities.ts';
import { failureLimit, msUntilWindow } from './rollout-window.ts';

export const pauseUpdate = defineUpdate<RolloutView, [RolloutPause]>(rolloutUpdates.pause);
export const resumeUpdate = defineUpdate<RolloutView, [RolloutResume]>(rolloutUpdates.resume);
export const approveUpdate = defineUpdate<RolloutView>(rolloutUpdates.approve);
export const setMaxConcurrencyUpdate = defineUpdate<RolloutView, [RolloutConcurrency]>(
  rolloutUpdates.setMaxConcurrency,
);
export const rolloutView = defineQuery<RolloutView>(rolloutQuery);
// The API sent these before updates existed; a rollout still honours them where they make sense.
const pauseSignalDef = defineSignal(pauseSignal);
const resumeSignalDef = defineSignal(resumeSignal);
export const siteEndedSignal = defineSignal<[RolloutSiteEnded]>(rolloutSiteEndedSignal);
/** What workers send: the ends of the sites they ran within 200 ms (src/activities/site-outcome-reports.ts). */
export const sitesEndedSignal = defineSignal<[RolloutSiteEnded[]]>(rolloutSitesEndedSignal);

/**
 * A run's history grows by four to five events per site started as a child (child initiated, started, its end
 * signalled, closed if the run still lives, and a share of workflow tasks; two more with a site timeout), by less
 * than one for sites started in bulk (their ends arrive batched, src/activities/site-outcome-reports.ts). A run
 * continues as new when the server suggests it (a few thousand events) or past this many, without waiting for its
 * sites: they report their end to whichever run is current, so the window stays full across runs and no history nears
 * Temporal's hard limit of 51,200 events, whatever the fleet's size.
 */
const defaultMaxEventsPerRun = 20_000;
/** How often a run asks which of the sites earlier runs started closed without reporting (terminated, timed out). */
const defaultSweepSeconds = 300;
/** The server's default limit on a workflow's pending children (limit.numPendingChildExecutions.error). */
const defaultMaxPendingChildren = 2000;
const pageSize = 1000;
/** Reasons are kept for this many sites of each kind; the counts stay exact. */
const noteCap = 100;
const recentCap = 20;
/**
 * How often, at most, a rollout copies its progress into its memo (workflow time): one history event each time, and
 * what the API answers, with its age, when the progress query is not answered in time.
 */
const progressMemoEveryMs = 15_000;
/** A site found idle this recently is started without asking again. */
const busyCheckTtlMs = 5 * 60_000;

const fleet = proxyActivities<FleetActivities>({
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' },
});
/** Hundreds of workflow starts: seconds, minutes on a loaded server; a retry joins the starts its attempt made. */
const bulk = proxyActivities<Pick<FleetActivities, 'startRolloutSites'>>({
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' },
});
/**
 * A turn that starts this many sites or more starts them with one activity per bulkBatch sites instead of one child
 * workflow each: the server records a workflow's child starts one after another (measured on the dev server: 1,000
 * children 30 s, 1,000 independent starts 8 s), and a rollout's first turns start its whole window. Fewer (a window
 * refilled as sites end, canaries) stay children: each is then a link in the Web UI and costs nothing extra.
 */
const defaultBulkStartFrom = 20;
const bulkBatch = 500;

type Outcome =
  | { kind: 'succeeded' }
  | { kind: 'failed'; reason: string; timedOut: boolean }
  | { kind: 'busy'; reason: string }
  | { kind: 'cancelled' };

interface RunningSite {
  /**
   * This run's child: its scope cancels it. Absent for a site an earlier run started, or one started in bulk (not a
   * child): cancelled by its id, its end known from its report.
   */
  scope?: CancellationScope;
  started: boolean;
  timedOut: boolean;
  /** Workflow time, epoch ms: a site's timeout counts from here across runs. */
  startedAt: number;
}

/** Thrown by update validators: the API answers 409 for the first type, 422 for the second. */
const conflict = (message: string) => ApplicationFailure.create({ type: 'RolloutStateConflict', message });
const invalid = (message: string) => ApplicationFailure.create({ type: 'InvalidRolloutUpdate', message });

function isFailureBudget(value: unknown): value is FailureBudget {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 0;
  return typeof value === 'string' && /^(100|\d{1,2}(\.\d+)?)%$/.test(value);
}

/** The innermost message: a child's failure wraps the child's own error as its cause. */
function innermostMessage(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  return err.cause instanceof Error ? innermostMessage(err.cause) : err.message;
}

const note = (list: RolloutSiteNote[], site: string, reason: string) => {
  list.push({ site, reason: reason.slice(0, 500) });
  if (list.length > noteCap) list.shift();
};

/**
 * One operation (patch, upgrade, install) across the sites a selector picks: one child workflow per site, under the
 * site's business-key id so that a site runs one such operation at a time, in a sliding window of maxConcurrency;
 * canaries first, a failure budget, per-site timeouts, maintenance windows; pause, resume, approval and concurrency by
 * validated updates; progress by query; continue-as-new so that 10,000 sites are many bounded histories.
 */
export async function fleetRollout(input: FleetRolloutInput): Promise<RolloutResult> {
  const rollout = new Rollout(input);
  return rollout.run().finally(() => {
    rollout.reportProgress(true);
  });
}

class Rollout {
  private readonly input: FleetRolloutInput;
  private readonly request: RolloutRequest;
  private readonly strategy: RolloutStrategy;
  /** Unique per run of a schedule too: a scheduled run's workflow id carries the schedule's timestamp. */
  private readonly rolloutId: string;
  private readonly c: RolloutCarry;
  private readonly canarySet: Set<string>;
  private readonly running = new Map<string, RunningSite>();
  private readonly clearedAt = new Map<string, number>();
  private readonly recent: string[] = [];
  private readonly cancelledSites: string[] = [];
  private resolved: boolean;
  /** This run's children not yet closed: what the server counts against its limit on pending children. */
  private ownOpen = 0;
  /** Children whose start this run has asked for and not yet heard of: a run continues as new only without any. */
  private starting = 0;
  private sweepAt: number;
  private readonly sweepMs: number;
  /** Bumped by every change the main loop may act on; the loop sleeps until it moves. */
  private version = 0;
  private stopping: string | undefined;
  private waiting: string | undefined;
  private finalStep: string | undefined;
  private alarmAt: number | undefined;
  private readonly maxPendingChildren: number;
  private readonly bulkStartFrom: number;
  private readonly maxEventsPerRun: number;
  private readonly sitesGauge = new SitesGauge();
  /** What the memo last said of the progress, and when (workflow time). */
  private memoed = { key: '', at: -Infinity };

  constructor(input: FleetRolloutInput) {
    this.input = input;
    this.request = input.request;
    this.strategy = input.request.strategy;
    const { workflowId } = workflowInfo();
    this.rolloutId = workflowId.startsWith('rollout/') ? workflowId.slice('rollout/'.length) : input.rolloutId;
    this.resolved = input.carry !== undefined;
    const limit = input.limits?.maxPendingChildren ?? defaultMaxPendingChildren;
    this.maxPendingChildren = Math.min(Math.max(Math.trunc(limit), 1), 10_000);
    this.bulkStartFrom = Math.max(Math.trunc(input.limits?.bulkStartFrom ?? defaultBulkStartFrom), 1);
    const events = input.limits?.maxEventsPerRun ?? defaultMaxEventsPerRun;
    this.maxEventsPerRun = Math.min(Math.max(Math.trunc(events), 100), 40_000);
    this.sweepMs = Math.max(input.limits?.unreportedSweepSeconds ?? defaultSweepSeconds, 1) * 1000;
    this.sweepAt = Date.now() + this.sweepMs;
    this.c = input.carry ?? {
      run: 1,
      total: 0,
      zones: ['UTC'],
      pending: [],
      canaries: [...this.strategy.canarySites],
      canaryFailed: [],
      canaryHeld: false,
      gate: this.strategy.canarySites.length > 0 ? 'canary' : 'open',
      counts: { succeeded: 0, failed: 0, busy: 0, cancelled: 0, skipped: 0 },
      failures: [],
      busy: [],
      skipped: [],
      failureLimit: 0,
      tolerated: 0,
      paused: false,
      maxConcurrency: this.strategy.maxConcurrency,
    };
    this.canarySet = new Set(this.c.canaries);
    // Before the handlers: reports that reached the new run before its first task are delivered as they are set.
    for (const [site, startedAt, timedOut] of this.c.inFlight ?? []) {
      const entry: RunningSite = { started: true, timedOut, startedAt };
      this.running.set(site, entry);
      this.armCarriedTimeout(site, entry);
    }
    delete this.c.inFlight;
    this.setHandlers();
  }

  private setHandlers(): void {
    setHandler(progress, () => this.progress());
    setHandler(rolloutView, () => this.view());
    setHandler(
      pauseUpdate,
      // Clients may send no argument at all, whatever the definition says.
      (args?: RolloutPause) => {
        this.pause(args?.reason ?? 'paused by an operator');
        return this.view();
      },
      {
        validator: (args) => {
          if (this.finalStep !== undefined || this.stopping !== undefined) throw conflict('the rollout is ending');
          if (this.c.paused) throw conflict(`the rollout is already paused (${this.c.pauseReason ?? ''})`);
          const reason = (args as { reason?: unknown } | undefined)?.reason;
          if (reason !== undefined && (typeof reason !== 'string' || reason.length > 256)) {
            throw invalid('reason must be text of at most 256 characters');
          }
        },
      },
    );
    setHandler(
      resumeUpdate,
      (args?: RolloutResume) => {
        this.resume(args?.maxFailures);
        return this.view();
      },
      {
        validator: (args) => {
          if (!this.c.paused) throw conflict('the rollout is not paused');
          if (this.stopping !== undefined) throw conflict(`the rollout is stopping: ${this.stopping}`);
          const maxFailures = (args as { maxFailures?: unknown } | undefined)?.maxFailures;
          if (maxFailures !== undefined && !isFailureBudget(maxFailures)) {
            throw invalid('maxFailures must be a count of sites (0 or more) or a share such as "10%"');
          }
        },
      },
    );
    setHandler(
      approveUpdate,
      () => {
        this.c.gate = 'open';
        this.version++;
        return this.view();
      },
      {
        validator: () => {
          if (this.c.gate === 'approval') return;
          if (this.c.gate === 'open') throw conflict('there is nothing to approve: the rollout is past its canaries');
          throw conflict(
            this.c.gate === 'canary'
              ? 'the canaries have not finished yet'
              : 'the canaries are still soaking; approval comes after',
          );
        },
      },
    );
    setHandler(
      setMaxConcurrencyUpdate,
      (args) => {
        this.c.maxConcurrency = args.maxConcurrency;
        this.version++;
        return this.view();
      },
      {
        validator: (args) => {
          const n = (args as Partial<RolloutConcurrency> | undefined)?.maxConcurrency;
          if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 10_000) {
            throw invalid('maxConcurrency must be a whole number from 1 to 10000');
          }
          if (this.finalStep !== undefined) throw conflict('the rollout has ended');
        },
      },
    );
    setHandler(pauseSignalDef, () => {
      if (!this.c.paused && this.stopping === undefined) this.pause('paused by an operator');
    });
    setHandler(resumeSignalDef, () => {
      if (this.c.paused) this.resume(undefined);
    });
    // One site's end is what histories recorded before workers sent them together; both are honoured.
    setHandler(siteEndedSignal, (ended) => {
      this.siteReported(ended);
    });
    setHandler(sitesEndedSignal, (ended) => {
      for (const e of ended) this.siteReported(e);
    });
  }

  private siteReported({ site, outcome, reason }: RolloutSiteEnded): void {
    const entry = this.running.get(site);
    // A site this run does not count as running: its end is known already (its child's result came first).
    if (!entry) return;
    if (outcome === 'succeeded') this.ended(site, { kind: 'succeeded' });
    else if (entry.timedOut) this.ended(site, this.timedOutOutcome());
    else if (outcome === 'cancelled') this.ended(site, { kind: 'cancelled' });
    else this.ended(site, { kind: 'failed', reason: reason ?? 'failed', timedOut: false });
  }

  async run(): Promise<RolloutResult> {
    try {
      if (!this.resolved) await this.resolve();
      for (;;) {
        this.advanceGate();
        const unchecked = this.launch();
        if (unchecked.length > 0) {
          await this.checkBusy(unchecked);
          continue;
        }
        if (this.running.size === 0 && (this.stopping !== undefined || this.c.pending.length === 0)) break;
        if (this.starting === 0 && this.wantsContinueAsNew()) return await this.continueAsNew();
        if (this.hasCarried()) {
          if (Date.now() >= this.sweepAt) {
            await this.sweepUnreported();
            continue;
          }
          this.alarm(this.sweepAt);
        }
        const seen = this.version;
        this.reportProgress();
        await condition(() => this.version !== seen);
      }
    } catch (err) {
      if (isCancellation(err)) await this.cancelled();
      throw err;
    }
    return this.finish();
  }

  /** All pages of the selection, canaries first, in name order after them. */
  private async resolve(): Promise<void> {
    const childInputError = this.childInputError();
    if (childInputError) throw ApplicationFailure.create({ type: 'RolloutInvalid', message: childInputError });
    const sites: { name: string; timeZone?: string }[] = [];
    const missing: RolloutSiteNote[] = [];
    let next: string | undefined;
    do {
      const page = await fleet.resolveRolloutSites({
        selector: this.request.selector,
        limit: pageSize,
        ...(next !== undefined && { continue: next }),
      });
      sites.push(...page.sites);
      missing.push(...page.missing);
      next = page.continue;
    } while (next !== undefined);

    const byName = new Map(sites.map((s) => [s.name, s]));
    const absent = this.c.canaries.filter((c) => !byName.has(c));
    if (absent.length > 0) {
      throw ApplicationFailure.create({
        type: 'RolloutInvalid',
        message: `canary sites not among the ${sites.length} selected sites: ${absent.join(', ')}`,
      });
    }
    const zoneIndex = new Map<string, number>([['UTC', 0]]);
    // Without a window the zone never matters: every site is filed under UTC and the carried state stays small.
    const zoneOf = (timeZone: string | undefined): number => {
      if (!this.strategy.maintenanceWindow || timeZone === undefined) return 0;
      let i = zoneIndex.get(timeZone);
      if (i === undefined) {
        i = this.c.zones.push(timeZone) - 1;
        zoneIndex.set(timeZone, i);
      }
      return i;
    };
    const ordered = [
      ...this.c.canaries.flatMap((name) => byName.get(name) ?? []),
      ...sites.filter((s) => !this.canarySet.has(s.name)),
    ];
    this.c.pending = ordered.map((s) => [s.name, zoneOf(s.timeZone)]);
    this.c.total = sites.length + missing.length;
    this.c.counts.skipped += missing.length;
    for (const m of missing) note(this.c.skipped, m.site, m.reason);
    this.c.failureLimit = failureLimit(this.strategy.maxFailures, sites.length);
    this.resolved = true;
    this.version++;
  }

  private childInputError(): string | undefined {
    const { operation, profile, kubernetesVersion } = this.request;
    if (operation === 'patch' && !profile) return 'a patch rollout needs a profile';
    if (operation === 'upgrade' && kubernetesVersion === undefined) return 'an upgrade rollout needs kubernetesVersion';
    return undefined;
  }

  private childInput(site: string): object {
    const r = this.request;
    if (r.operation === 'patch') {
      return {
        site,
        profile: r.profile,
        maxUnavailable: r.maxUnavailable ?? 1,
        ...(r.hostTakeoverSeconds !== undefined && { hostTakeoverSeconds: r.hostTakeoverSeconds }),
      };
    }
    if (r.operation === 'upgrade') return { site, kubernetesVersion: r.kubernetesVersion };
    return { site, keepOnFailure: false };
  }

  /** Moves from the canaries to the rest once they ended: hold on a failed canary, then soak, then approval. */
  private advanceGate(): void {
    const now = Date.now();
    if (this.c.gate === 'canary') {
      const canaryLeft =
        this.c.pending.some(([site]) => this.canarySet.has(site)) ||
        [...this.running.keys()].some((site) => this.canarySet.has(site));
      if (canaryLeft) return;
      if (this.c.canaryFailed.length > 0 && !this.c.canaryHeld) {
        // Resuming after this is the operator's decision to go on anyway.
        this.c.canaryHeld = true;
        this.limitReached(`canaries did not succeed: ${this.c.canaryFailed.slice(0, 10).join(', ')}`);
        return;
      }
      if (this.c.paused || this.stopping !== undefined) return;
      if (this.strategy.canarySoakSeconds > 0) {
        this.c.gate = 'soak';
        this.c.soakUntil = now + this.strategy.canarySoakSeconds * 1000;
      } else {
        this.c.gate = this.strategy.canaryApproval ? 'approval' : 'open';
      }
    }
    if (this.c.gate === 'soak') {
      const until = this.c.soakUntil ?? now;
      if (now < until) {
        this.alarm(until);
        return;
      }
      this.c.gate = this.strategy.canaryApproval ? 'approval' : 'open';
    }
  }

  /**
   * Starts as many sites as the window, the gate and the maintenance windows allow. Returns the sites that must be
   * checked for other operations before they may start (nothing starts past them until that is done).
   */
  private launch(): string[] {
    this.waiting = undefined;
    if (this.c.paused || this.stopping !== undefined) return [];
    if (this.c.gate !== 'canary' && this.c.gate !== 'open') return [];
    const now = Date.now();
    const instant = new Date(now);
    const windowWait = new Map<number, number>();
    let soonest = Infinity;
    let blocked = 0;
    let i = 0;
    const starts: string[] = [];
    let unchecked: string[] = [];
    while (
      this.running.size + starts.length < this.window() &&
      this.ownOpen + starts.length < this.maxPendingChildren &&
      !this.wantsContinueAsNew() &&
      i < this.c.pending.length
    ) {
      const entry = this.c.pending[i];
      if (!entry) break;
      const [site, zone] = entry;
      if (this.c.gate === 'canary' && !this.canarySet.has(site)) break;
      let wait = windowWait.get(zone);
      if (wait === undefined) {
        wait = msUntilWindow(this.strategy.maintenanceWindow, this.c.zones[zone] ?? 'UTC', instant);
        windowWait.set(zone, wait);
      }
      if (wait > 0) {
        soonest = Math.min(soonest, wait);
        blocked++;
        i++;
        continue;
      }
      const cleared = this.clearedAt.get(site);
      if (cleared === undefined || now - cleared > busyCheckTtlMs) {
        unchecked = this.toCheck(i);
        break;
      }
      this.c.pending.splice(i, 1);
      starts.push(site);
    }
    if (starts.length >= this.bulkStartFrom) {
      for (let b = 0; b < starts.length; b += bulkBatch) this.startBulk(starts.slice(b, b + bulkBatch));
    } else {
      for (const site of starts) this.start(site);
    }
    if (unchecked.length > 0) return unchecked;
    if (blocked > 0 && this.running.size === 0) {
      const minutes = Math.ceil(soonest / 60_000);
      this.waiting = `waiting for maintenance windows: ${blocked}+ sites outside theirs, the next opens in ${minutes} min`;
    }
    if (soonest < Infinity) this.alarm(now + soonest);
    return [];
  }

  /** The next sites in line from `from`, as many as are likely to start soon, for one look-up. */
  private toCheck(from: number): string[] {
    const ahead = Math.min(Math.max(this.window(), 50), 500);
    return this.c.pending.slice(from, from + ahead).map(([site]) => site);
  }

  private async checkBusy(sites: string[]): Promise<void> {
    const busy = await fleet.findBusySites({ sites, operation: this.request.operation });
    const now = Date.now();
    for (const site of sites) {
      const reason = busy[site];
      if (reason === undefined) {
        this.clearedAt.set(site, now);
        continue;
      }
      const at = this.c.pending.findIndex(([name]) => name === site);
      if (at >= 0) this.c.pending.splice(at, 1);
      this.ended(site, { kind: 'busy', reason });
    }
    this.version++;
  }

  private start(site: string): void {
    const scope = new CancellationScope();
    const entry: RunningSite = { scope, started: false, timedOut: false, startedAt: Date.now() };
    this.running.set(site, entry);
    this.clearedAt.delete(site);
    this.ownOpen++;
    this.starting++;
    this.version++;
    void scope
      .run(() => this.operate(site, entry))
      .then(
        () => ({ kind: 'succeeded' }) as const,
        (err: unknown) => this.outcomeOf(err, entry),
      )
      .then((outcome) => {
        // Its report usually came first (a site reports, then closes): counted once.
        if (this.running.get(site) === entry) this.ended(site, outcome);
      })
      .finally(() => {
        if (!entry.started) this.starting--;
        this.ownOpen--;
        this.version++;
      });
  }

  /**
   * Sites started by one activity rather than as children: like sites of an earlier run, each reports its end, is
   * cancelled by its id and timed out by a timer of the rollout's.
   */
  private startBulk(sites: string[]): void {
    const startedAt = Date.now();
    const entries = sites.map((site): [string, RunningSite] => [site, { started: false, timedOut: false, startedAt }]);
    for (const [site, entry] of entries) {
      this.running.set(site, entry);
      this.clearedAt.delete(site);
    }
    this.starting += sites.length;
    this.version++;
    const { workflowId, taskQueue } = workflowInfo();
    // Not cancelled with the rollout: its answer says which sites started, and so which to cancel.
    void CancellationScope.nonCancellable(() =>
      bulk.startRolloutSites({
        rollout: workflowId,
        rolloutId: this.rolloutId,
        operation: this.request.operation,
        taskQueue,
        sites: sites.map((site) => ({ site, input: this.childInput(site) })),
        ...(this.input.limits?.startsInFlight !== undefined && { startsInFlight: this.input.limits.startsInFlight }),
      }),
    )
      .then(
        (started) => {
          for (const [site, entry] of entries) {
            // A site that reported already has ended.
            if (this.running.get(site) !== entry) continue;
            const answer = started[site];
            if (answer && 'started' in answer) {
              entry.started = true;
              this.armCarriedTimeout(site, entry);
            } else if (answer) {
              this.ended(site, { kind: 'busy', reason: answer.busy });
            } else {
              this.ended(site, { kind: 'failed', reason: 'its start was not confirmed', timedOut: false });
            }
          }
        },
        (err: unknown) => {
          for (const [site, entry] of entries) {
            if (this.running.get(site) !== entry) continue;
            this.ended(site, { kind: 'failed', reason: `not started: ${innermostMessage(err)}`, timedOut: false });
          }
        },
      )
      .finally(() => {
        this.starting -= sites.length;
        this.version++;
      });
  }

  private hasCarried(): boolean {
    for (const entry of this.running.values()) if (entry.scope === undefined) return true;
    return false;
  }

  /** A site an earlier run started is cancelled by its workflow id once its timeout passes. */
  private armCarriedTimeout(site: string, entry: RunningSite): void {
    const seconds = this.strategy.siteTimeoutSeconds;
    if (seconds === undefined || entry.timedOut) return;
    void sleep(Math.max(entry.startedAt + seconds * 1000 - Date.now(), 1)).then(async () => {
      if (this.running.get(site) !== entry) return;
      entry.timedOut = true;
      this.version++;
      await this.cancelCarried(site);
    });
  }

  private async cancelCarried(site: string): Promise<void> {
    const id = siteOperationId(site, this.request.operation);
    // A site that closed meanwhile has nothing to cancel; its report is on its way.
    await getExternalWorkflowHandle(id)
      .cancel()
      .catch(() => undefined);
  }

  /** Sites earlier runs started that closed without a word (terminated, timed out by the server) end here. */
  private async sweepUnreported(): Promise<void> {
    const unreported = await fleet.findUnreportedSites({
      rolloutId: this.rolloutId,
      operation: this.request.operation,
    });
    for (const { site, reason } of unreported) {
      const entry = this.running.get(site);
      if (entry && entry.scope === undefined) {
        this.ended(site, { kind: 'failed', reason: reason ?? 'closed without reporting', timedOut: false });
      }
    }
    this.sweepAt = Date.now() + this.sweepMs;
  }

  private timedOutOutcome(): Outcome {
    return { kind: 'failed', reason: `timed out after ${this.strategy.siteTimeoutSeconds ?? 0} s`, timedOut: true };
  }

  private async operate(site: string, entry: RunningSite): Promise<void> {
    const operation = this.request.operation;
    const child = await startChild(workflowTypes[operation], {
      ...siteOperationStart(site, operation, this.rolloutId),
      args: [{ ...this.childInput(site), rollout: workflowInfo().workflowId }],
      // A run continues as new while its sites run on: they report their end to the rollout's current run. A
      // cancelled rollout cancels them itself (they compensate); a terminated one leaves them to finish.
      parentClosePolicy: ParentClosePolicy.ABANDON,
    });
    entry.started = true;
    this.starting--;
    this.version++;
    const seconds = this.strategy.siteTimeoutSeconds;
    if (seconds === undefined) {
      await child.result();
      return;
    }
    const timer = new CancellationScope();
    void timer
      .run(() => sleep(seconds * 1000))
      .then(
        () => {
          entry.timedOut = true;
          entry.scope?.cancel();
        },
        () => undefined,
      );
    try {
      await child.result();
    } finally {
      timer.cancel();
    }
  }

  private outcomeOf(err: unknown, entry: RunningSite): Outcome {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      return { kind: 'busy', reason: `${err.workflowId} is already running` };
    }
    if (entry.timedOut) return this.timedOutOutcome();
    if (isCancellation(err)) return { kind: 'cancelled' };
    return { kind: 'failed', reason: innermostMessage(err), timedOut: false };
  }

  private ended(site: string, outcome: Outcome): void {
    this.running.delete(site);
    this.version++;
    const { counts } = this.c;
    const canary = this.canarySet.has(site);
    switch (outcome.kind) {
      case 'succeeded':
        counts.succeeded++;
        this.recent.push(site);
        if (this.recent.length > recentCap) this.recent.shift();
        return;
      case 'cancelled':
        counts.cancelled++;
        this.cancelledSites.push(site);
        if (this.cancelledSites.length > noteCap) this.cancelledSites.shift();
        if (canary) this.c.canaryFailed.push(`${site} (cancelled)`);
        return;
      case 'busy':
        // Not a failure: the site's operation did not run, so it says nothing about the change being rolled out.
        // It is reported so that the operator can roll it out later, by name.
        counts.busy++;
        note(this.c.busy, site, outcome.reason);
        if (canary) this.c.canaryFailed.push(`${site} (busy)`);
        return;
      case 'failed':
        counts.failed++;
        note(this.c.failures, site, outcome.reason);
        if (canary) this.c.canaryFailed.push(site);
        if (outcome.timedOut && this.strategy.onSiteTimeout === 'abort') {
          this.stop(`${site} timed out and onSiteTimeout is abort`);
        } else if (counts.failed > Math.max(this.c.failureLimit, this.c.tolerated)) {
          this.limitReached(`${counts.failed} sites failed, more than maxFailures (${this.c.failureLimit})`);
        }
        return;
    }
  }

  private limitReached(why: string): void {
    if (this.strategy.onFailureLimit === 'stop') this.stop(why);
    else if (!this.c.paused) this.pause(why);
  }

  /** The sites by state as a metric (icn_rollout_sites), and the progress into the memo (at once with `final`). */
  reportProgress(final = false): void {
    this.sitesGauge.report(this.rolloutId, this.request.operation, this.counts());
    this.memoProgress(final);
  }

  /**
   * The progress (step, counts, paused) into the workflow's memo, where a describe finds it: a rollout of 10,000 sites
   * busy with their reports left 37 of 125 progress queries unanswered after 2 s (measured), and the API then says what
   * the rollout last recorded and when. At most every progressMemoEveryMs, and at the end of every run; a change
   * held back wakes the loop once that time is up. Histories recorded before the memo replay without it.
   */
  private memoProgress(final: boolean): void {
    const { step, counts, paused } = this.progress(false);
    const key = JSON.stringify([step, counts, paused]);
    if (key === this.memoed.key) return;
    const now = Date.now();
    if (!final && now < this.memoed.at + progressMemoEveryMs) {
      this.alarm(this.memoed.at + progressMemoEveryMs);
      return;
    }
    if (!patched('rollout-progress-memo')) return;
    const recorded: RecordedProgress = { step, counts, paused, at: new Date(now).toISOString() };
    upsertMemo({ progress: recorded });
    this.memoed = { key, at: now };
  }

  /** Starts no other site; the running ones finish (stopping them half-way would only add rollbacks). */
  private stop(why: string): void {
    this.stopping ??= why;
    this.version++;
  }

  private pause(why: string): void {
    this.c.paused = true;
    this.c.pauseReason = why;
    this.version++;
  }

  private resume(maxFailures: FailureBudget | undefined): void {
    this.c.paused = false;
    delete this.c.pauseReason;
    // The operator has seen the failures so far and goes on: only a further one trips the limit again.
    this.c.tolerated = this.c.counts.failed;
    if (maxFailures !== undefined) this.c.failureLimit = failureLimit(maxFailures, this.c.total);
    this.version++;
  }

  /** Wakes the main loop at `at` (workflow time); an earlier alarm already set covers a later one. */
  private alarm(at: number): void {
    if (this.alarmAt !== undefined && this.alarmAt <= at && this.alarmAt > Date.now()) return;
    this.alarmAt = at;
    void sleep(Math.max(at - Date.now(), 1)).then(
      () => {
        if (this.alarmAt === at) this.alarmAt = undefined;
        this.version++;
      },
      () => undefined,
    );
  }

  /** Sites that may run at once: what the operator set (across runs; one run's own children stay under the limit). */
  private window(): number {
    return this.c.maxConcurrency;
  }

  private wantsContinueAsNew(): boolean {
    const info = workflowInfo();
    if (info.continueAsNewSuggested || info.historyLength > this.maxEventsPerRun) return true;
    // At the server's limit on this run's pending children, a new run is what lets the next sites start.
    return (
      this.ownOpen >= this.maxPendingChildren &&
      this.c.pending.length > 0 &&
      this.running.size < this.window() &&
      !this.c.paused &&
      this.stopping === undefined &&
      (this.c.gate === 'open' || this.c.gate === 'canary')
    );
  }

  private async continueAsNew(): Promise<never> {
    await condition(allHandlersFinished);
    this.finalStep = `continuing as new (run ${this.c.run + 1})`;
    this.memoProgress(true);
    // Said outright so that the next run is found by the same search attributes (operation, rollout id).
    const next = makeContinueAsNewFunc<typeof fleetRollout>({
      typedSearchAttributes: workflowInfo().typedSearchAttributes,
      // The next run answers from the same memo until it records its own.
      ...(workflowInfo().memo && { memo: workflowInfo().memo }),
    });
    return next({
      rolloutId: this.input.rolloutId,
      request: this.request,
      ...(this.input.limits && { limits: this.input.limits }),
      carry: {
        ...this.c,
        run: this.c.run + 1,
        inFlight: [...this.running].map(([site, e]): [string, number, boolean] => [site, e.startedAt, e.timedOut]),
      },
    });
  }

  /**
   * The rollout was cancelled: this run's sites were asked to cancel with it (their scopes); those of earlier runs
   * are asked by id. Wait until every one has reported.
   */
  private async cancelled(): Promise<void> {
    await CancellationScope.nonCancellable(async () => {
      // Bulk starts under way first: their answers say which sites there are to cancel.
      await condition(() => this.starting === 0);
      const carried = [...this.running].filter(([, e]) => e.scope === undefined).map(([site]) => site);
      await Promise.all(carried.map((site) => this.cancelCarried(site)));
      await condition(() => this.running.size === 0);
      this.skipPending('the rollout was cancelled');
      this.finalStep = 'cancelled';
    });
  }

  private skipPending(reason: string): void {
    this.c.counts.skipped += this.c.pending.length;
    for (const [site] of this.c.pending.slice(0, noteCap)) note(this.c.skipped, site, reason);
    this.c.pending = [];
  }

  private finish(): RolloutResult {
    const { counts } = this.c;
    if (this.stopping !== undefined) {
      const why = this.stopping;
      this.skipPending(`the rollout stopped: ${why}`);
      this.finalStep = `stopped: ${why}`;
      throw ApplicationFailure.create({
        type: 'RolloutStopped',
        message: `rollout stopped: ${why} (${this.summary()})`,
        nonRetryable: true,
        details: [this.result()],
      });
    }
    if (counts.failed > Math.max(this.c.failureLimit, this.c.tolerated)) {
      this.finalStep = 'failed: more sites failed than maxFailures allows';
      throw ApplicationFailure.create({
        type: 'RolloutFailed',
        message: `rollout failed: ${counts.failed} sites failed, more than maxFailures (${this.c.failureLimit}) (${this.summary()})`,
        nonRetryable: true,
        details: [this.result()],
      });
    }
    this.finalStep = 'done';
    return this.result();
  }

  private summary(): string {
    const { succeeded, failed, busy, cancelled, skipped } = this.c.counts;
    return `${succeeded} succeeded, ${failed} failed, ${busy} busy, ${cancelled} cancelled, ${skipped} skipped`;
  }

  private counts(): Record<string, number> {
    return {
      total: this.c.total,
      pending: this.c.pending.length,
      running: this.running.size,
      ...this.c.counts,
    };
  }

  private result(): RolloutResult {
    return {
      rolloutId: this.rolloutId,
      counts: this.counts(),
      failures: this.c.failures,
      busy: this.c.busy,
      skipped: this.c.skipped,
    };
  }

  private step(): string {
    if (this.finalStep !== undefined) return this.finalStep;
    if (!this.resolved) return 'resolving the selected sites';
    if (this.stopping !== undefined) return `stopping: ${this.stopping}; waiting for the running sites`;
    if (this.c.paused) return `paused: ${this.c.pauseReason ?? ''}`;
    switch (this.c.gate) {
      case 'canary':
        return `canaries first: ${this.c.canaries.join(', ')}`;
      case 'soak':
        return `canaries soaking until ${new Date(this.c.soakUntil ?? 0).toISOString()}`;
      case 'approval':
        return 'waiting for an operator to approve the canaries';
      case 'open':
        return this.waiting ?? 'rolling out';
    }
  }

  private progress(withItems = true): OperationProgress {
    const items: OperationProgress['items'] = {};
    if (!withItems) return { step: this.step(), items, counts: this.counts(), paused: this.c.paused };
    for (const site of this.recent) items[site] = { state: 'succeeded' };
    for (const site of this.cancelledSites) items[site] = { state: 'cancelled' };
    for (const n of this.c.skipped) items[n.site] = { state: 'skipped', detail: n.reason };
    for (const n of this.c.busy) items[n.site] = { state: 'busy', detail: n.reason };
    for (const n of this.c.failures) items[n.site] = { state: 'failed', detail: n.reason };
    // The longest-running first (the map keeps start order), at most noteCap of them: at 10,000 sites every answer
    // listed every running site (≈ 0.5 MB, encoded on the worker that runs them all, every time an operator looked).
    // The counts stay exact; the Web UI lists every one of its site operations by IcnRolloutId.
    let listed = 0;
    for (const [site, r] of this.running) {
      if (r.timedOut) items[site] = { state: 'cancelling', detail: 'timed out' };
      else if (listed++ < noteCap) items[site] = { state: r.started ? 'running' : 'starting' };
    }
    return { step: this.step(), items, counts: this.counts(), paused: this.c.paused };
  }

  private view(): RolloutView {
    return {
      rolloutId: this.rolloutId,
      operation: this.request.operation,
      run: this.c.run,
      gate: this.c.gate,
      ...(this.c.gate === 'soak' &&
        this.c.soakUntil !== undefined && {
          soakUntil: new Date(this.c.soakUntil).toISOString(),
        }),
      paused: this.c.paused,
      ...(this.c.pauseReason !== undefined && { pauseReason: this.c.pauseReason }),
      ...(this.stopping !== undefined && { stopping: this.stopping }),
      maxConcurrency: this.c.maxConcurrency,
      window: this.window(),
      failureLimit: this.c.failureLimit,
      tolerated: this.c.tolerated,
    };
  }
}
