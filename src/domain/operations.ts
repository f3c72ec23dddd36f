import { z } from 'zod';
import { Labels, SemVer } from './meta.ts';
import { ResourceName } from './names.ts';
import { ProfileRef } from './site.ts';

export const OperationType = z.enum(['install', 'patch', 'upgrade']);
export type OperationType = z.infer<typeof OperationType>;

/** Every operation that changes one site; `reconcile` brings its hosts in line with its spec (hosts added, removed). */
export const SiteOperationType = z.enum([...OperationType.options, 'reconcile']);
export type SiteOperationType = z.infer<typeof SiteOperationType>;

export const InstallRequest = z.strictObject({
  /** Leave what was built in place when a step fails, for diagnosis, instead of compensating. */
  keepOnFailure: z.boolean().default(false),
});
export type InstallRequest = z.infer<typeof InstallRequest>;

/**
 * How long a host's patch may go unheard (its worker died) before another worker resumes it after its last step done:
 * the host step's heartbeat timeout. Each heartbeat and each check of it is a write on the Temporal server, so at
 * thousands of sites with host steps of minutes a longer takeover is what the server can carry (the README measures
 * it); a host step shorter than two thirds of it sends none.
 */
export const HostTakeoverSeconds = z.number().int().min(30).max(3600);

export const PatchRequest = z.strictObject({
  profile: ProfileRef,
  /** Hosts patched at once; the others keep serving. */
  maxUnavailable: z.number().int().min(1).max(100).default(1),
  /** Absent: `defaultHostTakeoverSeconds` (optional in the workflow's input, so that earlier histories replay). */
  hostTakeoverSeconds: HostTakeoverSeconds.optional(),
});
export type PatchRequest = z.infer<typeof PatchRequest>;

export const UpgradeRequest = z.strictObject({ kubernetesVersion: SemVer });
export type UpgradeRequest = z.infer<typeof UpgradeRequest>;

const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, "must be HH:MM (24 h, in each site's own time zone)");

/** A count of sites, or a share of the selected sites such as "10%" (rounded down). */
export const FailureBudget = z.union(
  [z.number().int().min(0), z.string().regex(/^(100|\d{1,2}(\.\d+)?)%$/)],
  'must be a count of sites (0 or more) or a share such as "10%"',
);
export type FailureBudget = z.infer<typeof FailureBudget>;

export const MaintenanceWindow = z
  .strictObject({ start: hhmm, end: hhmm })
  .refine((w) => w.start !== w.end, { message: 'must end at another time than it starts', path: ['end'] });
export type MaintenanceWindow = z.infer<typeof MaintenanceWindow>;

export const RolloutStrategy = z
  .strictObject({
    /**
     * Sites operated on at once; can be changed while the rollout runs. Holds past the Temporal server's limit on a
     * workflow's pending children (2,000): large turns start sites in bulk, and a run at the limit continues as new.
     */
    maxConcurrency: z.number().int().min(1).max(10_000).default(10),
    /** Sites done first, alone; the rest start only once they all succeeded (and the soak or approval passed). */
    canarySites: z.array(ResourceName).max(100).default([]),
    /** After the canaries succeeded, how long they run before the rest start. */
    canarySoakSeconds: z
      .number()
      .int()
      .min(0)
      .max(7 * 86_400)
      .default(0),
    /** After the canaries succeeded (and soaked), an operator approves the rest. */
    canaryApproval: z.boolean().default(false),
    /** Failed sites tolerated, as a count or a share of the selected sites; one more trips onFailureLimit. */
    maxFailures: FailureBudget.default(0),
    /**
     * Past maxFailures, or when a canary does not succeed: stop (start no other site, let the running ones end, the
     * rollout fails) or pause (until an operator resumes, which accepts the failures so far).
     */
    onFailureLimit: z.enum(['stop', 'pause']).default('pause'),
    /** A site still running after this long is cancelled (its operation compensates) and counted failed. */
    siteTimeoutSeconds: z
      .number()
      .int()
      .min(1)
      .max(7 * 86_400)
      .optional(),
    /** After a site timed out: continue (the failure budget decides) or abort (stop as onFailureLimit stop does). */
    onSiteTimeout: z.enum(['continue', 'abort']).default('continue'),
    /** No site starts outside this daily window, read in each site's own time zone (spec.timeZone, default UTC). */
    maintenanceWindow: MaintenanceWindow.optional(),
  })
  .superRefine((s, ctx) => {
    const seen = new Set<string>();
    s.canarySites.forEach((site, i) => {
      if (seen.has(site)) ctx.addIssue({ code: 'custom', path: ['canarySites', i], message: `repeats "${site}"` });
      seen.add(site);
    });
    if (s.canarySites.length === 0 && (s.canarySoakSeconds > 0 || s.canaryApproval)) {
      ctx.addIssue({ code: 'custom', path: ['canarySites'], message: 'is required for a canary soak or approval' });
    }
  });
export type RolloutStrategy = z.infer<typeof RolloutStrategy>;

/** The sites a rollout covers: those with all these labels, those named, or those named that have the labels. */
export const RolloutSelector = z
  .strictObject({
    /** An empty object selects every site: written out, never implied. */
    matchLabels: Labels.optional(),
    names: z.array(ResourceName).min(1).max(10_000).optional(),
  })
  .superRefine((s, ctx) => {
    if (s.matchLabels === undefined && s.names === undefined) {
      ctx.addIssue({ code: 'custom', path: [], message: 'needs matchLabels, names or both' });
    }
    const seen = new Set<string>();
    s.names?.forEach((name, i) => {
      if (seen.has(name)) ctx.addIssue({ code: 'custom', path: ['names', i], message: `repeats "${name}"` });
      seen.add(name);
    });
  });
export type RolloutSelector = z.infer<typeof RolloutSelector>;

export const RolloutRequest = z
  .strictObject({
    selector: RolloutSelector,
    operation: OperationType,
    /** For a patch: the profile every site moves to. */
    profile: ProfileRef.optional(),
    /** For a patch: hosts patched at once within each site. */
    maxUnavailable: z.number().int().min(1).max(100).optional(),
    /** For a patch: how long a host's step may go unheard before another worker resumes it (`HostTakeoverSeconds`). */
    hostTakeoverSeconds: HostTakeoverSeconds.optional(),
    /** For an upgrade: the Kubernetes version every site moves to. */
    kubernetesVersion: SemVer.optional(),
    strategy: RolloutStrategy.default(RolloutStrategy.parse({})),
  })
  .superRefine((r, ctx) => {
    if (r.operation === 'patch' && !r.profile) {
      ctx.addIssue({ code: 'custom', path: ['profile'], message: 'is required for a patch rollout' });
    }
    if (r.operation === 'upgrade' && !r.kubernetesVersion) {
      ctx.addIssue({ code: 'custom', path: ['kubernetesVersion'], message: 'is required for an upgrade rollout' });
    }
    for (const field of ['maxUnavailable', 'hostTakeoverSeconds'] as const) {
      if (r.operation !== 'patch' && r[field] !== undefined) {
        ctx.addIssue({ code: 'custom', path: [field], message: 'applies to a patch rollout only' });
      }
    }
  });
export type RolloutRequest = z.infer<typeof RolloutRequest>;

/** Five-field cron, as Temporal Schedules take it. */
const cron = z.string().regex(/^(\S+\s+){4}\S+$/, 'must be a five-field cron expression such as "0 2 * * 6"');

export const ScheduleRequest = z.strictObject({
  name: ResourceName,
  cron: z.array(cron).min(1).max(10),
  rollout: RolloutRequest,
  paused: z.boolean().default(false),
  note: z.string().max(1024).optional(),
});
export type ScheduleRequest = z.infer<typeof ScheduleRequest>;

export { defaultHostTakeoverSeconds, siteOperationId, workflowTypes } from './keys.ts';

/** Set by a rollout on the site operations it starts: the workflow id its outcome is signalled to. */
const rolloutMember = { rollout: z.string().optional() };

export const SiteInstallInput = InstallRequest.extend({ site: ResourceName, ...rolloutMember });
export type SiteInstallInput = z.infer<typeof SiteInstallInput>;
export const SitePatchInput = PatchRequest.extend({ site: ResourceName, ...rolloutMember });
export type SitePatchInput = z.infer<typeof SitePatchInput>;
export const SiteUpgradeInput = UpgradeRequest.extend({ site: ResourceName, ...rolloutMember });
export type SiteUpgradeInput = z.infer<typeof SiteUpgradeInput>;
export const SiteReconcileInput = z.strictObject({ site: ResourceName });
export type SiteReconcileInput = z.infer<typeof SiteReconcileInput>;

/** How a site operation a rollout started ended, as it signals the rollout (rolloutSiteEndedSignal). */
export interface RolloutSiteEnded {
  site: string;
  outcome: 'succeeded' | 'failed' | 'cancelled';
  reason?: string;
}

/** A site and why it is reported: the reason it failed, what it was busy with, why it was skipped. */
export interface RolloutSiteNote {
  site: string;
  reason: string;
}

/** Where the rollout stands between the canaries and the rest. */
export type RolloutGate = 'canary' | 'soak' | 'approval' | 'open';

/**
 * What a rollout hands to its next run when it continues as new: everything it decided so far, so that a rollout of
 * 10,000 sites is many short histories. Sites travel as [name, index into zones] pairs to keep the payload small.
 */
export interface RolloutCarry {
  run: number;
  total: number;
  zones: string[];
  pending: [string, number][];
  canaries: string[];
  /** Canaries that did not succeed, and whether the rollout already held on them (a resume then goes on). */
  canaryFailed: string[];
  canaryHeld: boolean;
  gate: RolloutGate;
  /** Epoch milliseconds (workflow time) when the canaries' soak ends. */
  soakUntil?: number;
  counts: { succeeded: number; failed: number; busy: number; cancelled: number; skipped: number };
  /** Capped lists, newest last: the counts stay exact, the reasons are a sample. */
  failures: RolloutSiteNote[];
  busy: RolloutSiteNote[];
  skipped: RolloutSiteNote[];
  failureLimit: number;
  /** Failures an operator accepted by resuming past the limit; the next one trips it again. */
  tolerated: number;
  paused: boolean;
  pauseReason?: string;
  maxConcurrency: number;
  /**
   * Sites started by earlier runs and still running, as [site, started at (epoch ms, workflow time), timed out]: a run
   * continues as new without waiting for its sites, which then report to whichever run is current.
   */
  inFlight?: [string, number, boolean][];
}

export interface FleetRolloutInput {
  rolloutId: string;
  request: RolloutRequest;
  /**
   * maxPendingChildren: the Temporal server's per-workflow limit on child workflows in flight (its dynamic config
   * limit.numPendingChildExecutions.error, 2,000 by default): one run starts no more sites than this, and continues
   * as new to start more (a cluster that raised it says so here, at most 10,000). unreportedSweepSeconds: how often
   * a run looks for sites of earlier runs that closed without reporting (terminated), 300 by default. bulkStartFrom:
   * a turn that starts this many sites or more starts them with one activity per 500 instead of as children (20 by
   * default; the server records one workflow's child starts one after another). maxEventsPerRun: a run continues as
   * new past this many history events if the server has not suggested it first (20,000 by default, 100 to 40,000).
   * startsInFlight: how many of a bulk turn's starts each activity has waiting on the server at once (8 by default).
   */
  limits?: {
    maxPendingChildren?: number;
    unreportedSweepSeconds?: number;
    bulkStartFrom?: number;
    maxEventsPerRun?: number;
    startsInFlight?: number;
  };
  /** Absent on a rollout's first run; set by the rollout itself when it continues as new. */
  carry?: RolloutCarry;
}

/** A rollout's own state, beside its progress: strategy values as changed by operators, and the gate. */
export const RolloutView = z.object({
  rolloutId: z.string(),
  operation: OperationType,
  /** 1 on the first run, one more at each continue-as-new. */
  run: z.number(),
  gate: z.enum(['canary', 'soak', 'approval', 'open']),
  soakUntil: z.string().optional(),
  paused: z.boolean(),
  pauseReason: z.string().optional(),
  /** Why the rollout starts no other site, once it stops. */
  stopping: z.string().optional(),
  maxConcurrency: z.number(),
  /** The most sites that run at once: maxConcurrency, unless the server's limit on pending children is lower. */
  window: z.number(),
  /** maxFailures as a count of this rollout's sites. */
  failureLimit: z.number(),
  tolerated: z.number(),
});
export type RolloutView = z.infer<typeof RolloutView>;

/** What a finished rollout returns; the notes are capped samples, the counts exact. */
export interface RolloutResult {
  rolloutId: string;
  counts: Record<string, number>;
  failures: RolloutSiteNote[];
  busy: RolloutSiteNote[];
  skipped: RolloutSiteNote[];
}

export { rolloutQuery, rolloutUpdates } from './keys.ts';

export const RolloutPause = z.strictObject({ reason: z.string().max(256).optional() });
export type RolloutPause = z.infer<typeof RolloutPause>;
export const RolloutResume = z.strictObject({
  /** Raises the failure budget on resume; otherwise the failures so far are accepted and the next one trips again. */
  maxFailures: FailureBudget.optional(),
});
export type RolloutResume = z.infer<typeof RolloutResume>;
export const RolloutConcurrency = z.strictObject({ maxConcurrency: z.number().int().min(1).max(10_000) });
export type RolloutConcurrency = z.infer<typeof RolloutConcurrency>;

/** What every operation answers to its `progress` query: the runbook step and each host's or site's state. */
export const OperationProgress = z.object({
  step: z.string(),
  items: z.record(z.string(), z.object({ state: z.string(), detail: z.string().optional() })).default({}),
  counts: z.record(z.string(), z.number()).default({}),
  paused: z.boolean().optional(),
});
export type OperationProgress = z.infer<typeof OperationProgress>;

/**
 * An operation's progress as it last recorded it in its workflow's memo (a rollout does, at most every 15 s): what
 * the API answers, with `at`, when the progress query is not answered in time.
 */
export const RecordedProgress = OperationProgress.pick({ step: true, counts: true, paused: true }).extend({
  at: z.iso.datetime(),
});
export type RecordedProgress = z.infer<typeof RecordedProgress>;

export { pauseSignal, progressQuery, resumeSignal } from './keys.ts';

/** An operation as the API reports it, read from Temporal (visibility, the progress query, the result). */
export const OperationStatus = z.object({
  workflowId: z.string(),
  runId: z.string(),
  type: z.string(),
  status: z.string(),
  site: z.string().optional(),
  operation: z.string().optional(),
  startTime: z.string(),
  closeTime: z.string().optional(),
  progress: OperationProgress.optional(),
  /** Set when `progress` is the one the operation last recorded (its query went unanswered): when it recorded it. */
  progressAsOf: z.string().optional(),
  result: z.unknown().optional(),
  failure: z.string().optional(),
});
export type OperationStatus = z.infer<typeof OperationStatus>;
