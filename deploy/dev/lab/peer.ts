/**
 * The lab: real peers (Ironic, a Kubernetes API server with kwok, SSH compute nodes) started by the project's own
 * scripts, each with its data under data/lab/<peer>/, on free loopback ports. `npm run lab -- up|down|status`.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

export const labDir = process.env.ICN_LAB_DIR ?? join(process.cwd(), 'data', 'lab');

export interface LabContext {
  /** This peer's own folder under the lab folder. */
  dataDir: string;
  log: (message: string) => void;
}

/**
 * One real program (or group of them) of the lab. `up` is idempotent: a peer already running and healthy is reused
 * and its info returned again. `info` is plain JSON (ports, file paths): tests and the demo read it from the state file.
 */
export interface LabPeer<Info extends object = object> {
  name: string;
  up: (ctx: LabContext) => Promise<Info>;
  down: (ctx: LabContext) => Promise<void>;
}

export function peerContext(name: string): LabContext {
  const dataDir = join(labDir, name);
  mkdirSync(dataDir, { recursive: true });
  return {
    dataDir,
    log: (message) => {
      console.error(`[lab:${name}] ${message}`);
    },
  };
}
