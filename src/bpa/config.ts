/** The BPA's configuration, from its environment; parsed once at its entry point. */
import { resolve } from 'node:path';
import { z } from 'zod';
import { ConfigEnv, ConfigError, type TokenScope } from '../domain/config.ts';
import type { EngineOptions } from './engine.ts';

const positive = z.coerce.number().int().positive();

export const BpaConfigEnv = z.object({
  ICN_BPA_HOST: z.string().min(1).default('127.0.0.1'),
  ICN_BPA_PORT: z.coerce.number().int().min(0).max(65535).default(8091),
  /** As ICN_API_TOKENS: `token=scope|scope,...`; read lists, write uploads, operate runs jobs and reads kubeconfigs. */
  ICN_BPA_TOKENS: ConfigEnv.shape.ICN_API_TOKENS,
  ICN_BPA_DATA_DIR: z.string().min(1).default('data/bpa'),
  /** Where SSH key secrets are mounted (`<name>/privateKey`); under the data folder when absent. */
  ICN_BPA_SECRETS_DIR: z.string().min(1).optional(),
  /** Hosts must present the key listed here; any key is accepted without it (freshly installed hosts). */
  ICN_BPA_KNOWN_HOSTS: z.string().min(1).optional(),
  ICN_BPA_PARALLELISM: positive.default(32),
  ICN_BPA_MAX_CONNECTIONS: positive.default(128),
  ICN_BPA_ATTEMPTS: positive.default(5),
  ICN_BPA_RETRY_DELAY_MS: positive.default(1000),
  ICN_BPA_INLINE_MAX_BYTES: z.coerce
    .number()
    .int()
    .nonnegative()
    .default(64 * 1024 ** 2),
  ICN_BPA_COMMAND_TIMEOUT_MS: positive.default(30 * 60_000),
  ICN_BPA_ARTIFACT_MAX_BYTES: positive.default(16 * 1024 ** 3),
  LOG_LEVEL: ConfigEnv.shape.LOG_LEVEL,
});

export interface BpaConfig {
  host: string;
  port: number;
  tokens: Map<string, TokenScope[]>;
  dataDir: string;
  secretsDir: string;
  knownHostsPath: string | undefined;
  maxConnections: number;
  maxArtifactBytes: number;
  engine: EngineOptions;
  logLevel: z.infer<typeof BpaConfigEnv>['LOG_LEVEL'];
}

export function parseBpaConfig(env: Record<string, string | undefined>): BpaConfig {
  const result = BpaConfigEnv.safeParse(env);
  if (!result.success) {
    const lines = result.error.issues.map((i) => `  ${i.path.join('.') || '(environment)'}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = result.data;
  const dataDir = resolve(e.ICN_BPA_DATA_DIR);
  return {
    host: e.ICN_BPA_HOST,
    port: e.ICN_BPA_PORT,
    tokens: e.ICN_BPA_TOKENS ?? new Map<string, TokenScope[]>(),
    dataDir,
    secretsDir: resolve(e.ICN_BPA_SECRETS_DIR ?? `${dataDir}/secrets`),
    knownHostsPath: e.ICN_BPA_KNOWN_HOSTS,
    maxConnections: e.ICN_BPA_MAX_CONNECTIONS,
    maxArtifactBytes: e.ICN_BPA_ARTIFACT_MAX_BYTES,
    engine: {
      parallelism: e.ICN_BPA_PARALLELISM,
      attempts: e.ICN_BPA_ATTEMPTS,
      retryDelayMs: e.ICN_BPA_RETRY_DELAY_MS,
      inlineMaxBytes: e.ICN_BPA_INLINE_MAX_BYTES,
      commandTimeoutMs: e.ICN_BPA_COMMAND_TIMEOUT_MS,
    },
    logLevel: e.LOG_LEVEL,
  };
}
