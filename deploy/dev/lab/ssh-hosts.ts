/**
 * Lab peer `ssh-hosts`: simulated compute nodes, one real sshd each (ICN_LAB_SSH_HOSTS of them, default 3), see
 * ssh-hosts/hosts.ts. Info: hosts with port and root folder, the user, the client key's path and the known_hosts file.
 */
import type { LabPeer } from './peer.ts';
import { type SshHostsInfo, startSshHosts, stopSshHosts } from './ssh-hosts/hosts.ts';

export {
  type SshHost,
  type SshHostsInfo,
  killSshHost,
  sshHostsPssBytes,
  startSshHosts,
  stopSshHosts,
} from './ssh-hosts/hosts.ts';

function hostCount(): number {
  const raw = process.env.ICN_LAB_SSH_HOSTS ?? '3';
  const count = Number(raw);
  if (!Number.isInteger(count) || count < 1)
    throw new Error(`ICN_LAB_SSH_HOSTS must be a positive integer, not "${raw}"`);
  return count;
}

export const sshHostsPeer: LabPeer<SshHostsInfo> = {
  name: 'ssh-hosts',
  up: async (ctx) => startSshHosts({ count: hostCount(), dir: ctx.dataDir, log: ctx.log }),
  down: async (ctx) => stopSshHosts(ctx.dataDir),
};
