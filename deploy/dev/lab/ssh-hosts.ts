import type { LabPeer } from './peer.ts';

// Placeholder until this peer is built (issue 4); it fails clearly rather than pretending to start.
export const sshHostsPeer: LabPeer = {
  name: 'ssh-hosts',
  up: async () => {
    throw new Error('the ssh-hosts lab peer is not built yet');
  },
  down: async () => undefined,
};
