export { siteHealthCheck } from './site-health-check.ts';
export { siteInstall } from './site-install.ts';
export { sitePatch } from './site-patch.ts';
export { siteReconcile } from './site-reconcile.ts';
export { siteUpgrade } from './site-upgrade.ts';
export { fleetRollout } from './fleet-rollout.ts';
