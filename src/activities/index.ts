import { type BpmActivityDeps, createBpmActivities } from './bpm.ts';
import { createHealthActivities, type HealthActivityDeps } from './health.ts';

export type ActivityDeps = HealthActivityDeps & { bpm?: BpmActivityDeps };

/** Every activity of the project, made from the clients it needs so that tests inject real or lab peers. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createHealthActivities(deps),
    ...createBpmActivities(deps.bpm),
  };
}

export type Activities = ReturnType<typeof createActivities>;
