import { z } from 'zod';
import { ResourceName } from './names.ts';

/** Scopes a bearer token can carry; every API route but health and metrics requires one. */
export const TokenScope = z.enum(['read', 'write', 'operate', 'admin']);
export type TokenScope = z.infer<typeof TokenScope>;

const port = z.coerce.number().int().min(1).max(65535);
const booleanFlag = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');
const commaList = z.string().transform((s) =>
  s
    .split(',')
    .map((x) => x.trim())
    .filter((x) => x !== ''),
);

const base64Key = z
  .string()
  .refine((s) => Buffer.from(s, 'base64').length === 32, 'must be 32 bytes (AES-256), base64-encoded');

/**
 * Codec keys: `id=base64key,id2=base64key`. The first is the active key unless ICN_CODEC_ACTIVE_KEY names another;
 * older keys stay listed so that histories written under them remain readable after a rotation.
 */
const codecKeyList = z.string().transform((s, ctx) => {
  const keys: Record<string, string> = {};
  for (const entry of s.split(',').map((x) => x.trim())) {
    if (entry === '') continue;
    const eq = entry.indexOf('=');
    const id = entry.slice(0, eq);
    if (eq <= 0 || !/^[A-Za-z0-9._-]+$/.test(id)) {
      ctx.addIssue({ code: 'custom', message: 'each entry must be keyId=base64Key (key id: letters, digits, . _ -)' });
      return z.NEVER;
    }
    const parsed = base64Key.safeParse(entry.slice(eq + 1));
    if (!parsed.success) {
      ctx.addIssue({ code: 'custom', message: `key "${id}" ${parsed.error.issues[0]?.message ?? 'is invalid'}` });
      return z.NEVER;
    }
    keys[id] = parsed.data;
  }
  if (Object.keys(keys).length === 0) {
    ctx.addIssue({ code: 'custom', message: 'at least one key is required' });
    return z.NEVER;
  }
  return keys;
});

/** Tokens: `token=scope|scope,token2=scope`. Tokens are secrets: they are compared, never logged. */
const tokenList = z.string().transform((s, ctx) => {
  const tokens = new Map<string, TokenScope[]>();
  for (const entry of s.split(',').map((x) => x.trim())) {
    if (entry === '') continue;
    const eq = entry.lastIndexOf('=');
    const token = entry.slice(0, eq);
    if (eq <= 0 || token.length < 16) {
      ctx.addIssue({ code: 'custom', message: 'each entry must be token=scope|scope with a token of 16+ characters' });
      return z.NEVER;
    }
    const scopes = z.array(TokenScope).safeParse(entry.slice(eq + 1).split('|'));
    if (!scopes.success) {
      ctx.addIssue({ code: 'custom', message: 'scopes must be read, write, operate or admin' });
      return z.NEVER;
    }
    tokens.set(token, scopes.data);
  }
  return tokens;
});

export const ConfigEnv = z.object({
  TEMPORAL_ADDRESS: z
    .string()
    .regex(/^[^\s:]+:\d+$/, 'must be host:port')
    .default('127.0.0.1:7233'),
  TEMPORAL_NAMESPACE: z.string().min(1).default('icn'),
  TEMPORAL_TLS: booleanFlag.default(false),
  TEMPORAL_TLS_CA_FILE: z.string().min(1).optional(),
  TEMPORAL_TLS_CERT_FILE: z.string().min(1).optional(),
  TEMPORAL_TLS_KEY_FILE: z.string().min(1).optional(),
  TEMPORAL_TLS_SERVER_NAME: z.string().min(1).optional(),
  ICN_TASK_QUEUE: z.string().min(1).default('icn-global'),
  ICN_CODEC_KEYS: codecKeyList,
  ICN_CODEC_ACTIVE_KEY: z.string().min(1).optional(),
  ICN_CODEC_CORS_ORIGINS: commaList.default(['http://localhost:8233', 'http://127.0.0.1:8233']),
  /** Only for a local dev stack whose Web UI has no login: lets the codec endpoint decode without a token. */
  ICN_CODEC_ALLOW_ANONYMOUS: booleanFlag.default(false),
  ICN_API_HOST: z.string().min(1).default('127.0.0.1'),
  ICN_API_PORT: port.default(8090),
  ICN_API_TOKENS: tokenList.optional(),
  /** PostgreSQL; without it the API uses an embedded PGlite database under ICN_DATA_DIR. */
  DATABASE_URL: z
    .string()
    .regex(/^postgres(ql)?:\/\//, 'must be a postgres:// URL')
    .optional(),
  /**
   * PostgreSQL connections each process may hold. A worker with thousands of site operations in flight writes their
   * status at once: too few connections and its inventory reads queue behind each other (measured at 10,000 sites).
   */
  ICN_DATABASE_POOL_SIZE: z.coerce.number().int().min(1).max(1000).default(10),
  ICN_DATA_DIR: z.string().min(1).default('data'),
  /** Where artifact contents live (default `<ICN_DATA_DIR>/artifacts`): one folder the API and every worker share. */
  ICN_ARTIFACT_DIR: z.string().min(1).optional(),
  /** Keys that encrypt secrets at rest, as ICN_CODEC_KEYS; the first (or ICN_SECRETS_ACTIVE_KEY) encrypts. */
  ICN_SECRETS_KEYS: codecKeyList,
  ICN_SECRETS_ACTIVE_KEY: z.string().min(1).optional(),
  ICN_ARTIFACT_MAX_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .default(8 * 1024 ** 3),
  /** The helm binary the worker runs charts with (npm start points it at the tools cache). */
  ICN_HELM_BINARY: z.string().min(1).default('helm'),
  /** The site whose task queue a site agent serves (src/worker/site-agent.ts); the global controller ignores it. */
  ICN_SITE: ResourceName.optional(),
  /** The worker's Prometheus endpoint (/metrics on all interfaces): the SDK's worker metrics and the project's. */
  ICN_WORKER_METRICS_PORT: port.optional(),
  /** The worker's /healthz (200 while it polls, 503 once it stopped) for liveness and readiness probes. */
  ICN_WORKER_HEALTH_PORT: port.optional(),
  /** Worker capacity (Temporal's WorkerOptions of the same names); the SDK's defaults without them. */
  ICN_WORKER_MAX_CONCURRENT_ACTIVITY_TASK_EXECUTIONS: z.coerce.number().int().positive().optional(),
  ICN_WORKER_MAX_CONCURRENT_WORKFLOW_TASK_EXECUTIONS: z.coerce.number().int().min(2).optional(),
  ICN_WORKER_MAX_CACHED_WORKFLOWS: z.coerce.number().int().nonnegative().optional(),
  ICN_WORKER_MAX_CONCURRENT_ACTIVITY_TASK_POLLS: z.coerce.number().int().positive().optional(),
  ICN_WORKER_MAX_CONCURRENT_WORKFLOW_TASK_POLLS: z.coerce.number().int().min(2).optional(),
  /**
   * The share of the workflow pollers that take new work from the shared queue (the SDK's nonStickyToStickyPollRatio,
   * 0.2 by default); the rest serve the workflows this worker holds. A rollout starting thousands of sites at once
   * waits on the shared queue for their first tasks.
   */
  ICN_WORKER_NON_STICKY_TO_STICKY_POLL_RATIO: z.coerce.number().gt(0).max(1).optional(),
  /**
   * How long one workflow activation may run before it is failed as stuck (the SDK's isolateExecutionTimeout, 5 s
   * by default). Each entry into the workflow sandbox then starts and stops a watchdog thread (≈ 0.2 ms of CPU, a few
   * per activation); 0 turns the watchdog off (patches/@temporalio+worker+*.patch): 8% less worker CPU at 2,000 sites.
   */
  ICN_WORKER_WORKFLOW_DEADLOCK_TIMEOUT_MS: z.coerce.number().int().nonnegative().optional(),
  /**
   * The SDK records a stack for every promise a workflow makes, for the stack trace query (the Web UI's Stack Trace
   * tab): `off` leaves that out (patches/@temporalio+worker+*.patch; the query then answers that stack traces are not
   * enabled), 10% less machine CPU per site at a fleet's start. Read by the SDK's workflow threads from the
   * environment; validated here.
   */
  ICN_WORKER_WORKFLOW_STACK_TRACES: z.enum(['on', 'off']).optional(),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

export interface Config {
  temporal: {
    address: string;
    namespace: string;
    tls?: { caFile?: string; certFile?: string; keyFile?: string; serverName?: string };
  };
  taskQueue: string;
  codec: { keys: Record<string, string>; activeKeyId: string; corsOrigins: string[]; allowAnonymous: boolean };
  api: { host: string; port: number; tokens: Map<string, TokenScope[]> };
  store: {
    databaseUrl: string | undefined;
    databasePoolSize: number;
    dataDir: string;
    artifactDir: string;
    maxArtifactBytes: number;
    secretKeys: { keys: Record<string, string>; activeKeyId: string };
  };
  helmBinary: string;
  site?: string;
  /** Where a worker (global or site agent) serves its metrics; none without it. */
  workerMetricsPort?: number;
  workerHealthPort?: number;
  /** Worker capacity options, only those set. */
  workerTuning: WorkerTuning;
  logLevel: z.infer<typeof ConfigEnv>['LOG_LEVEL'];
}

export interface WorkerTuning {
  maxConcurrentActivityTaskExecutions?: number;
  maxConcurrentWorkflowTaskExecutions?: number;
  maxCachedWorkflows?: number;
  maxConcurrentActivityTaskPolls?: number;
  maxConcurrentWorkflowTaskPolls?: number;
  nonStickyToStickyPollRatio?: number;
  /** Milliseconds; 0: no watchdog (see ICN_WORKER_WORKFLOW_DEADLOCK_TIMEOUT_MS). */
  isolateExecutionTimeout?: number;
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function activeKey(keys: Record<string, string>, named: string | undefined, prefix: string): string {
  const id = named ?? Object.keys(keys)[0];
  if (id === undefined || !(id in keys)) {
    throw new ConfigError(`invalid configuration:\n  ${prefix}_ACTIVE_KEY: "${id}" is not in ${prefix}_KEYS`);
  }
  return id;
}

/** Parses the environment once, at an entry point; the message names each wrong variable and why. */
export function parseConfig(env: Record<string, string | undefined>): Config {
  const result = ConfigEnv.safeParse(env);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join('.') || '(environment)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = result.data;
  const activeKeyId = activeKey(e.ICN_CODEC_KEYS, e.ICN_CODEC_ACTIVE_KEY, 'ICN_CODEC');
  const secretsKeyId = activeKey(e.ICN_SECRETS_KEYS, e.ICN_SECRETS_ACTIVE_KEY, 'ICN_SECRETS');
  const tlsFiles = [e.TEMPORAL_TLS_CA_FILE, e.TEMPORAL_TLS_CERT_FILE, e.TEMPORAL_TLS_KEY_FILE];
  if (Boolean(e.TEMPORAL_TLS_CERT_FILE) !== Boolean(e.TEMPORAL_TLS_KEY_FILE)) {
    throw new ConfigError(
      'invalid configuration:\n  TEMPORAL_TLS_CERT_FILE, TEMPORAL_TLS_KEY_FILE: set both for mutual TLS, or neither',
    );
  }
  const tls =
    e.TEMPORAL_TLS || tlsFiles.some(Boolean)
      ? {
          ...(e.TEMPORAL_TLS_CA_FILE && { caFile: e.TEMPORAL_TLS_CA_FILE }),
          ...(e.TEMPORAL_TLS_CERT_FILE && { certFile: e.TEMPORAL_TLS_CERT_FILE }),
          ...(e.TEMPORAL_TLS_KEY_FILE && { keyFile: e.TEMPORAL_TLS_KEY_FILE }),
          ...(e.TEMPORAL_TLS_SERVER_NAME && { serverName: e.TEMPORAL_TLS_SERVER_NAME }),
        }
      : undefined;
  return {
    temporal: { address: e.TEMPORAL_ADDRESS, namespace: e.TEMPORAL_NAMESPACE, ...(tls && { tls }) },
    taskQueue: e.ICN_TASK_QUEUE,
    codec: {
      keys: e.ICN_CODEC_KEYS,
      activeKeyId,
      corsOrigins: e.ICN_CODEC_CORS_ORIGINS,
      allowAnonymous: e.ICN_CODEC_ALLOW_ANONYMOUS,
    },
    api: { host: e.ICN_API_HOST, port: e.ICN_API_PORT, tokens: e.ICN_API_TOKENS ?? new Map<string, TokenScope[]>() },
    store: {
      databaseUrl: e.DATABASE_URL,
      databasePoolSize: e.ICN_DATABASE_POOL_SIZE,
      dataDir: e.ICN_DATA_DIR,
      artifactDir: e.ICN_ARTIFACT_DIR ?? `${e.ICN_DATA_DIR}/artifacts`,
      maxArtifactBytes: e.ICN_ARTIFACT_MAX_BYTES,
      secretKeys: { keys: e.ICN_SECRETS_KEYS, activeKeyId: secretsKeyId },
    },
    helmBinary: e.ICN_HELM_BINARY,
    ...(e.ICN_SITE !== undefined && { site: e.ICN_SITE }),
    ...(e.ICN_WORKER_METRICS_PORT !== undefined && { workerMetricsPort: e.ICN_WORKER_METRICS_PORT }),
    ...(e.ICN_WORKER_HEALTH_PORT !== undefined && { workerHealthPort: e.ICN_WORKER_HEALTH_PORT }),
    workerTuning: Object.fromEntries(
      Object.entries({
        maxConcurrentActivityTaskExecutions: e.ICN_WORKER_MAX_CONCURRENT_ACTIVITY_TASK_EXECUTIONS,
        maxConcurrentWorkflowTaskExecutions: e.ICN_WORKER_MAX_CONCURRENT_WORKFLOW_TASK_EXECUTIONS,
        maxCachedWorkflows: e.ICN_WORKER_MAX_CACHED_WORKFLOWS,
        maxConcurrentActivityTaskPolls: e.ICN_WORKER_MAX_CONCURRENT_ACTIVITY_TASK_POLLS,
        maxConcurrentWorkflowTaskPolls: e.ICN_WORKER_MAX_CONCURRENT_WORKFLOW_TASK_POLLS,
        nonStickyToStickyPollRatio: e.ICN_WORKER_NON_STICKY_TO_STICKY_POLL_RATIO,
        isolateExecutionTimeout: e.ICN_WORKER_WORKFLOW_DEADLOCK_TIMEOUT_MS,
      }).filter(([, v]) => v !== undefined),
    ),
    logLevel: e.LOG_LEVEL,
  };
}
