/**
 * `npm run lab -- up|down|status [peer...]`: starts, stops or shows the lab's real peers. Each peer's info (ports,
 * files) goes to data/lab/<peer>/info.json, or its failure to data/lab/<peer>/error.txt, so that tests needing a peer
 * that could not start fail with that peer's own message.
 */
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ironicPeer } from './ironic.ts';
import { kubernetesPeer } from './kubernetes.ts';
import { type LabPeer, labDir, peerContext } from './peer.ts';
import { postgresPeer } from './postgres.ts';
import { sshHostsPeer } from './ssh-hosts.ts';

export const peers: Record<string, LabPeer> = {
  ironic: ironicPeer,
  kubernetes: kubernetesPeer,
  'ssh-hosts': sshHostsPeer,
  postgres: postgresPeer,
};

export type PeerName = keyof typeof peers;

export interface PeerStatus {
  name: string;
  info?: object;
  error?: string;
  seconds?: number;
}

function selected(names: string[]): LabPeer[] {
  const unknown = names.filter((n) => !(n in peers));
  if (unknown.length > 0) {
    throw new Error(`unknown lab peer(s): ${unknown.join(', ')}; known: ${Object.keys(peers).join(', ')}`);
  }
  return (names.length === 0 ? Object.keys(peers) : names).map((n) => peers[n] as LabPeer);
}

export async function labUp(names: string[] = []): Promise<PeerStatus[]> {
  return Promise.all(
    selected(names).map(async (peer) => {
      const ctx = peerContext(peer.name);
      const started = Date.now();
      rmSync(join(ctx.dataDir, 'error.txt'), { force: true });
      try {
        const info = await peer.up(ctx);
        writeFileSync(join(ctx.dataDir, 'info.json'), JSON.stringify(info, null, 2));
        return { name: peer.name, info, seconds: (Date.now() - started) / 1000 };
      } catch (err) {
        const error = err instanceof Error ? err.message : String(err);
        rmSync(join(ctx.dataDir, 'info.json'), { force: true });
        writeFileSync(join(ctx.dataDir, 'error.txt'), error);
        return { name: peer.name, error, seconds: (Date.now() - started) / 1000 };
      }
    }),
  );
}

export async function labDown(names: string[] = []): Promise<void> {
  await Promise.all(
    selected(names).map(async (peer) => {
      const ctx = peerContext(peer.name);
      await peer.down(ctx);
      rmSync(join(ctx.dataDir, 'info.json'), { force: true });
    }),
  );
}

export function labStatus(names: string[] = []): PeerStatus[] {
  return selected(names).map((peer) => {
    const dir = join(labDir, peer.name);
    if (existsSync(join(dir, 'info.json'))) {
      return { name: peer.name, info: JSON.parse(readFileSync(join(dir, 'info.json'), 'utf8')) as object };
    }
    if (existsSync(join(dir, 'error.txt')))
      return { name: peer.name, error: readFileSync(join(dir, 'error.txt'), 'utf8') };
    return { name: peer.name, error: 'not started (npm run lab -- up)' };
  });
}

/** Lab info as printed: even lab-only credentials (the emulated BMC's password) stay out of terminals and CI logs. */
function printable(info: object | undefined): string {
  return JSON.stringify(info, (key, value: unknown) =>
    /password|token|secret|privateKey/i.test(key) ? '[redacted]' : value,
  );
}

if (import.meta.main) {
  const [command = 'status', ...names] = process.argv.slice(2);
  if (command === 'up') {
    const results = await labUp(names);
    for (const r of results) {
      console.log(
        r.error ? `✗ ${r.name}: ${r.error}` : `✓ ${r.name} (${r.seconds?.toFixed(1)} s) ${printable(r.info)}`,
      );
    }
    process.exitCode = results.some((r) => r.error) ? 1 : 0;
  } else if (command === 'down') {
    await labDown(names);
    console.log('lab stopped');
  } else if (command === 'status') {
    for (const r of labStatus(names))
      console.log(r.error ? `✗ ${r.name}: ${r.error}` : `✓ ${r.name} ${printable(r.info)}`);
  } else {
    console.error('usage: npm run lab -- up|down|status [ironic|kubernetes|ssh-hosts ...]');
    process.exitCode = 2;
  }
}
