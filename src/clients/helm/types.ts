/**
 * What Helm prints with `-o json`: a release (upgrade), a release's metadata (get metadata) and its history. Only the fields the project
 * reads are declared; the rest (the chart's templates, the manifest, the values) pass through unread.
 */
import { z } from 'zod';

/** Helm's release states (pkg/release/status.go). */
export const releaseStates = [
  'unknown',
  'deployed',
  'uninstalled',
  'superseded',
  'failed',
  'uninstalling',
  'pending-install',
  'pending-upgrade',
  'pending-rollback',
] as const;
export type ReleaseState = (typeof releaseStates)[number];

const state = z.enum(releaseStates).catch('unknown');

export const releaseJsonSchema = z.object({
  name: z.string(),
  namespace: z.string(),
  version: z.number().int(),
  info: z.object({
    status: state,
    description: z.string().optional(),
    first_deployed: z.string().optional(),
    last_deployed: z.string().optional(),
    notes: z.string().optional(),
  }),
  chart: z.object({
    metadata: z.object({
      name: z.string(),
      version: z.string(),
      appVersion: z.string().optional(),
    }),
  }),
});

/** `helm get metadata -o json` (helm status strips the chart from its JSON). */
export const metadataJsonSchema = z.object({
  name: z.string(),
  namespace: z.string(),
  revision: z.number().int(),
  status: state,
  chart: z.string(),
  version: z.string(),
  appVersion: z.string().optional(),
  deployedAt: z.string().optional(),
});

export const historyJsonSchema = z.array(
  z.object({
    revision: z.number().int(),
    updated: z.string(),
    status: state,
    chart: z.string(),
    app_version: z.string().optional(),
    description: z.string().optional(),
  }),
);

export interface ReleaseStatus {
  name: string;
  namespace: string;
  /** The release's revision: 1 after the first install, one more after each upgrade or rollback. */
  revision: number;
  status: ReleaseState;
  chartName: string;
  chartVersion: string;
  appVersion?: string;
  lastDeployed?: string;
}

export interface HistoryEntry {
  revision: number;
  updated: string;
  status: ReleaseState;
  /** "<name>-<version>", as Helm prints it. */
  chart: string;
  appVersion?: string;
  description?: string;
}

export function toReleaseStatus(json: z.infer<typeof releaseJsonSchema>): ReleaseStatus {
  return {
    name: json.name,
    namespace: json.namespace,
    revision: json.version,
    status: json.info.status,
    chartName: json.chart.metadata.name,
    chartVersion: json.chart.metadata.version,
    ...(json.chart.metadata.appVersion === undefined ? {} : { appVersion: json.chart.metadata.appVersion }),
    ...(json.info.last_deployed === undefined ? {} : { lastDeployed: json.info.last_deployed }),
  };
}

export function metadataToReleaseStatus(json: z.infer<typeof metadataJsonSchema>): ReleaseStatus {
  return {
    name: json.name,
    namespace: json.namespace,
    revision: json.revision,
    status: json.status,
    chartName: json.chart,
    chartVersion: json.version,
    ...(json.appVersion === undefined || json.appVersion === '' ? {} : { appVersion: json.appVersion }),
    ...(json.deployedAt === undefined || json.deployedAt === '' ? {} : { lastDeployed: json.deployedAt }),
  };
}

export function toHistory(json: z.infer<typeof historyJsonSchema>): HistoryEntry[] {
  return json.map((h) => ({
    revision: h.revision,
    updated: h.updated,
    status: h.status,
    chart: h.chart,
    ...(h.app_version === undefined || h.app_version === '' ? {} : { appVersion: h.app_version }),
    ...(h.description === undefined ? {} : { description: h.description }),
  }));
}
