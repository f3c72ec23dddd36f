import { createHealthActivities, type HealthActivityDeps } from './health.ts';

export type ActivityDeps = HealthActivityDeps;

/** Every activity of the project, made from the clients it needs so that tests inject real or lab peers. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createHealthActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
