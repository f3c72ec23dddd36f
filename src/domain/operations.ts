import { z } from 'zod';
import { Labels, SemVer } from './meta.ts';
import { ResourceName } from './names.ts';
import { ProfileRef } from './site.ts';

export const OperationType = z.enum(['install', 'patch', 'upgrade']);
export type OperationType = z.infer<typeof OperationType>;

export const InstallRequest = z.strictObject({
  /** Leave what was built in place when a step fails, for diagnosis, instead of compensating. */
  keepOnFailure: z.boolean().default(false),
});
export type InstallRequest = z.infer<typeof InstallRequest>;

export const PatchRequest = z.strictObject({
  profile: ProfileRef,
  /** Hosts patched at once; the others keep serving. */
  maxUnavailable: z.number().int().min(1).max(100).default(1),
});
export type PatchRequest = z.infer<typeof PatchRequest>;

export const UpgradeRequest = z.strictObject({ kubernetesVersion: SemVer });
export type UpgradeRequest = z.infer<typeof UpgradeRequest>;

const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be HH:MM (24 h, UTC)');

export const RolloutStrategy = z.strictObject({
  maxConcurrency: z.number().int().min(1).max(10_000).default(10),
  /** Sites done first, alone; the rest start only once they all succeeded. */
  canarySites: z.array(ResourceName).max(100).default([]),
  maxFailures: z.number().int().min(0).default(0),
  /** Past maxFailures: stop (cancel the rest) or pause (wait for an operator's resume). */
  onFailureLimit: z.enum(['stop', 'pause']).default('pause'),
  maintenanceWindow: z.strictObject({ start: hhmm, end: hhmm }).optional(),
});
export type RolloutStrategy = z.infer<typeof RolloutStrategy>;

export const RolloutRequest = z
  .strictObject({
    selector: z.strictObject({ matchLabels: Labels }),
    operation: OperationType,
    profile: ProfileRef.optional(),
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

/** Workflow type names: the API starts them by name; the worker registers the functions of the same names. */
export const workflowTypes = {
  install: 'siteInstall',
  patch: 'sitePatch',
  upgrade: 'siteUpgrade',
  rollout: 'fleetRollout',
} as const;

/** One business key per site and operation, so a repeated request joins or is refused, never duplicated. */
export function siteOperationId(site: string, operation: OperationType): string {
  return `site/${site}/${operation}`;
}

export const SiteInstallInput = InstallRequest.extend({ site: ResourceName });
export type SiteInstallInput = z.infer<typeof SiteInstallInput>;
export const SitePatchInput = PatchRequest.extend({ site: ResourceName });
export type SitePatchInput = z.infer<typeof SitePatchInput>;
export const SiteUpgradeInput = UpgradeRequest.extend({ site: ResourceName });
export type SiteUpgradeInput = z.infer<typeof SiteUpgradeInput>;
export interface FleetRolloutInput {
  rolloutId: string;
  request: RolloutRequest;
}

/** What every operation answers to its `progress` query: the runbook step and each host's or site's state. */
export const OperationProgress = z.object({
  step: z.string(),
  items: z.record(z.string(), z.object({ state: z.string(), detail: z.string().optional() })).default({}),
  counts: z.record(z.string(), z.number()).default({}),
  paused: z.boolean().optional(),
});
export type OperationProgress = z.infer<typeof OperationProgress>;

export const progressQuery = 'progress';
export const pauseSignal = 'pause';
export const resumeSignal = 'resume';

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
  result: z.unknown().optional(),
  failure: z.string().optional(),
});
export type OperationStatus = z.infer<typeof OperationStatus>;
