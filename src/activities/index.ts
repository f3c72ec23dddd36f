import { createHealthActivities, type HealthActivityDeps } from './health.ts';

export type ActivityDeps = HealthActivityDeps;

/** The activities every worker has (health probes); the site sagas' come from createSiteActivities. */
export function createActivities(deps: ActivityDeps) {
  return {
    ...createHealthActivities(deps),
  };
}

export type Activities = ReturnType<typeof createActivities>;
