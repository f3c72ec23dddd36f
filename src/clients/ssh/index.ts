/** SSH to compute nodes: commands and verified uploads over a pool of connections, errors as PeerError('ssh'). */
export {
  SshClient,
  type ExecOptions,
  type ExecResult,
  type SshClientOptions,
  type SshTarget,
  type UploadOptions,
  type UploadResult,
} from './client.ts';
export { classifySshError, type SshReason } from './errors.ts';
export { KnownHosts } from './known-hosts.ts';
