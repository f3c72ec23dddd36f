import type { LabPeer } from './peer.ts';

// Placeholder until this peer is built (issue 4); it fails clearly rather than pretending to start.
export const kubernetesPeer: LabPeer = {
  name: 'kubernetes',
  up: async () => {
    throw new Error('the kubernetes lab peer is not built yet');
  },
  down: async () => undefined,
};
