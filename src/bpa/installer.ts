/**
 * One package on one host: one SSH command that receives the artifact (on its stdin, from one in-memory copy shared
 * by every host), checks its sha256, installs, verifies and records (see host-script.ts). Artifacts too large to
 * keep in memory go by sftp first, streamed from the cache's file. Failures come back as PeerError('bpa'):
 * retryable when the connection broke, not when the host refused the package.
 */
import { posix } from 'node:path';
import { PeerError } from '../clients/errors.ts';
import type { ExecResult, SshClient, SshTarget } from '../clients/ssh/index.ts';
import type { JobAction, PackageResult } from '../domain/bpa.ts';
import type { BinaryPackage } from '../domain/software-profile.ts';
import { exitCodes, installScript, rollbackScript, scriptSays, shellQuote } from './host-script.ts';

export type ArtifactSource = { kind: 'buffer'; buffer: Buffer } | { kind: 'file'; path: string; size: number };

export interface RunPackageOptions {
  /** The whole script (transfer included) is killed past this. */
  timeoutMs: number;
}

function hostError(where: string, message: string, reason: string, retryable = false): PeerError {
  return new PeerError('bpa', `${where}: ${message}`, { retryable, reason });
}

function failure(where: string, result: ExecResult): PeerError {
  const said = scriptSays(result.stdout).at(-1) ?? '';
  const detail = (result.stderr.trim() || said).slice(-1500);
  switch (result.exitCode) {
    case exitCodes.truncated:
      return hostError(where, `the artifact arrived incomplete (${said})`, 'TransferIncomplete', true);
    case exitCodes.checksum:
      return hostError(where, `sha256 mismatch on the host: ${said}; the copy was removed`, 'ChecksumMismatch');
    case exitCodes.install:
      return hostError(where, `${said}: ${detail}`, 'InstallFailed');
    case exitCodes.verify:
      return hostError(where, `${said}: ${detail}`, 'VerifyFailed');
    case exitCodes.nothingToRollBack:
      return hostError(where, 'no earlier version is recorded on the host', 'NothingToRollBack');
    case exitCodes.missingArtifact:
      return hostError(where, said, 'MissingArtifact');
    case exitCodes.lock:
      return hostError(where, 'cannot take the BPA lock on the host', 'HostError', true);
    default: {
      const how =
        result.exitCode === null ? `was killed by ${result.signal ?? 'a signal'}` : `exited ${result.exitCode}`;
      return hostError(where, `the BPA script ${how}: ${detail}`, 'HostError');
    }
  }
}

export async function runPackage(
  ssh: SshClient,
  target: SshTarget & { name: string },
  pkg: BinaryPackage,
  action: JobAction,
  source: ArtifactSource | undefined,
  opts: RunPackageOptions,
): Promise<{ result: PackageResult; sha256: string }> {
  const where = `host ${target.name} (${action} ${pkg.name} ${pkg.version})`;
  let result: ExecResult;
  if (action === 'rollback') {
    result = await ssh.exec(target, rollbackScript(pkg), { timeoutMs: opts.timeoutMs });
  } else if (source?.kind === 'buffer') {
    result = await ssh.exec(target, installScript(pkg, { kind: 'stdin', size: source.buffer.length }), {
      timeoutMs: opts.timeoutMs,
      stdin: source.buffer,
    });
  } else if (source?.kind === 'file') {
    // Ask first: a large artifact is not sent to a host that is at the version or holds the file already.
    const probe = await ssh.exec(
      target,
      `D="\${HOST_ROOT:-}/var/lib/icn-bpa"; head -n 1 "$D/packages/${pkg.name}" 2>/dev/null; echo; ` +
        `sha256sum -- "$D/artifacts/${pkg.artifact.sha256}" 2>/dev/null | cut -c1-64`,
      { timeoutMs: opts.timeoutMs },
    );
    const [current = '', held = ''] = probe.stdout.split('\n');
    let path = '/nonexistent';
    if (current !== `${pkg.version} ${pkg.artifact.sha256}` && held !== pkg.artifact.sha256) {
      // Relative: it lands in the sftp server's start folder (the host's root on the lab's hosts, else home).
      const uploaded = await ssh.upload(target, source.path, posix.join('.icn-bpa-upload', pkg.artifact.sha256), {
        sha256: pkg.artifact.sha256,
      });
      path = uploaded.path;
    }
    result = await ssh.exec(target, installScript(pkg, { kind: 'uploaded', path }), { timeoutMs: opts.timeoutMs });
  } else {
    throw hostError(where, 'the artifact is not held by this BPA', 'MissingArtifact');
  }
  if (result.exitCode !== 0) throw failure(where, result);
  const said = scriptSays(result.stdout);
  if (action === 'rollback') {
    const skipped = said.find((l) => l.startsWith('skipped'));
    if (skipped !== undefined) {
      const now = skipped.slice('skipped'.length).trim();
      return { result: { name: pkg.name, version: now, outcome: 'skipped' }, sha256: '' };
    }
    const [to = '', toSha = ''] = (said.find((l) => l.startsWith('to '))?.slice(3) ?? '').split(' ');
    return { result: { name: pkg.name, version: to, from: pkg.version, outcome: 'rolled-back' }, sha256: toSha };
  }
  const sha256 = pkg.artifact.sha256;
  if (said.includes('skipped')) return { result: { name: pkg.name, version: pkg.version, outcome: 'skipped' }, sha256 };
  if (!said.includes('installed')) {
    throw hostError(
      where,
      `the BPA script ended without reporting: ${shellQuote(result.stdout.slice(-300))}`,
      'HostError',
    );
  }
  const from = said
    .find((l) => l.startsWith('from '))
    ?.slice(5)
    .trim();
  return { result: { name: pkg.name, version: pkg.version, ...(from && { from }), outcome: 'installed' }, sha256 };
}
