/** The BPA assembled from its parts, as its entry point, tests and the benchmark start it. */
import { join } from 'node:path';
import type { Logger } from '../observability/logger.ts';
import { ArtifactCache } from './artifacts.ts';
import type { BpaConfig } from './config.ts';
import { BpaEngine } from './engine.ts';
import { JobJournal } from './journal.ts';
import { SecretsFolder, SshPool } from './secrets.ts';

export interface Bpa {
  config: BpaConfig;
  artifacts: ArtifactCache;
  engine: BpaEngine;
  secrets: SecretsFolder;
  ssh: SshPool;
  close(): Promise<void>;
}

export async function openBpa(config: BpaConfig, logger: Logger): Promise<Bpa> {
  const artifacts = new ArtifactCache(join(config.dataDir, 'artifacts'), config.maxArtifactBytes);
  await artifacts.init();
  const secrets = new SecretsFolder(config.secretsDir);
  const ssh = new SshPool(secrets, {
    ...(config.knownHostsPath !== undefined && { knownHostsPath: config.knownHostsPath }),
    maxConnections: config.maxConnections,
    logger,
  });
  const engine = new BpaEngine({
    artifacts,
    journal: new JobJournal(config.dataDir),
    ssh,
    logger,
    options: config.engine,
  });
  engine.init();
  return {
    config,
    artifacts,
    engine,
    secrets,
    ssh,
    async close() {
      await engine.stop();
      await ssh.close();
    },
  };
}

export { parseBpaConfig, type BpaConfig } from './config.ts';
export { buildBpaApi } from './api/server.ts';
