export { siteHealthCheck } from './site-health-check.ts';
