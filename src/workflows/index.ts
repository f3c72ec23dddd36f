export { siteHealthCheck } from './site-health-check.ts';
export { siteInstall } from './site-install.ts';
