// Needs: the ssh-hosts lab peer (real sshd processes, one per simulated host).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { labUp } from '../../../deploy/dev/lab/index.ts';
import { freePort } from '../../../deploy/dev/lab/processes.ts';
import type { SshHostsInfo } from '../../../deploy/dev/lab/ssh-hosts.ts';
import { PeerError } from '../../../src/clients/errors.ts';
import { SshClient } from '../../../src/clients/ssh/index.ts';
import { labPeer } from '../../support/lab.ts';

let info: SshHostsInfo;
let client: SshClient;
let scratch: string;
// Each run writes under its own folder in the hosts' roots, so that runs against a long-lived lab do not mix.
const run = `run-${Date.now()}-${randomBytes(3).toString('hex')}`;

async function rejection(promise: Promise<unknown>): Promise<PeerError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof PeerError)) throw new Error(`expected a PeerError, got ${String(err)}`);
  return err;
}

beforeAll(async () => {
  await labUp(['ssh-hosts']);
  info = labPeer('ssh-hosts') as SshHostsInfo;
  client = new SshClient({ privateKey: { path: info.clientKeyPath }, knownHostsPath: info.knownHostsPath });
  scratch = mkdtempSync(join(tmpdir(), 'icn-ssh-test-'));
});

afterAll(async () => {
  await client.close();
  rmSync(scratch, { recursive: true, force: true });
  for (const host of info.hosts) rmSync(join(host.root, 'opt', 'icn-test', run), { recursive: true, force: true });
});

describe('SshClient against real sshd hosts', () => {
  it('uploads a file to every host, verified by sha256 on the host, and runs a command on each', async () => {
    expect(info.hosts.length).toBeGreaterThanOrEqual(3);
    const content = randomBytes(3 * 2 ** 20 + 17);
    const local = join(scratch, 'package.bin');
    writeFileSync(local, content);
    const digest = createHash('sha256').update(content).digest('hex');
    const remote = `opt/icn-test/${run}/packages/package.bin`;

    const results = await Promise.all(
      info.hosts.map(async (h) => {
        const target = { host: h.host, port: h.port };
        const uploaded = await client.upload(target, local, remote, { mode: 0o640 });
        const command = await client.exec(
          target,
          `cd "$HOST_ROOT/opt/icn-test/${run}" && echo "$HOST_NAME" > marker && sha256sum packages/package.bin && echo warn >&2`,
        );
        return { h, uploaded, command };
      }),
    );

    for (const { h, uploaded, command } of results) {
      const onDisk = join(h.root, remote);
      expect(uploaded).toEqual({ path: onDisk, sha256: digest, bytes: content.length });
      expect(readFileSync(onDisk).equals(content)).toBe(true);
      expect(command).toMatchObject({ exitCode: 0, signal: null, stderr: 'warn\n', truncated: false });
      expect(command.stdout).toBe(`${digest}  packages/package.bin\n`);
      expect(readFileSync(join(h.root, 'opt', 'icn-test', run, 'marker'), 'utf8')).toBe(`${h.name}\n`);
    }
    // No temporary copy is left beside the file.
    const listing = execFileSync('ls', ['-A', join(info.hosts[0]!.root, 'opt', 'icn-test', run, 'packages')], {
      encoding: 'utf8',
    });
    expect(listing).toBe('package.bin\n');
    // One connection per host, reused for the upload, the check and the command.
    expect(client.openConnections).toBe(info.hosts.length);
  });

  it('reports a non-zero exit as a result from exec and as CommandFailed from execOrThrow', async () => {
    const h = info.hosts[0]!;
    const target = { host: h.host, port: h.port };
    const result = await client.exec(target, 'echo out; echo bad thing >&2; exit 7');
    expect(result).toMatchObject({ exitCode: 7, stdout: 'out\n', stderr: 'bad thing\n' });

    const err = await rejection(client.execOrThrow(target, 'echo bad thing >&2; exit 7'));
    expect(err).toMatchObject({ peer: 'ssh', reason: 'CommandFailed', retryable: false });
    expect(err.message).toContain(`127.0.0.1:${h.port}`);
    expect(err.message).toContain('exited 7: bad thing');
  });

  it('fails a command past its timeout as a retryable Timeout and kills it', async () => {
    const h = info.hosts[0]!;
    const target = { host: h.host, port: h.port };
    const flag = join(h.root, 'opt', 'icn-test', run, 'late');
    const err = await rejection(
      client.exec(target, `sleep 2 && mkdir -p "$(dirname '${flag}')" && touch '${flag}'`, { timeoutMs: 300 }),
    );
    expect(err).toMatchObject({ reason: 'Timeout', retryable: true });
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect(existsSync(flag)).toBe(false);
  });

  it('refuses a file whose sha256 does not match and leaves nothing at the target', async () => {
    const h = info.hosts[1]!;
    const local = join(scratch, 'other.bin');
    writeFileSync(local, 'not what the digest says');
    const remote = `opt/icn-test/${run}/mismatch.bin`;
    const err = await rejection(
      client.upload({ host: h.host, port: h.port }, local, remote, { sha256: 'ab'.repeat(32) }),
    );
    expect(err).toMatchObject({ reason: 'ChecksumMismatch', retryable: false });
    expect(err.message).toContain(createHash('sha256').update('not what the digest says').digest('hex'));
    expect(existsSync(join(h.root, remote))).toBe(false);
  });

  it('rejects a wrong key as a non-retryable AuthFailed, without the key in the message', async () => {
    const keyPath = join(scratch, 'wrong_ed25519');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyPath]);
    const key = readFileSync(keyPath);
    const wrong = new SshClient({ privateKey: key });
    try {
      const h = info.hosts[0]!;
      const err = await rejection(wrong.exec({ host: h.host, port: h.port }, 'true'));
      expect(err).toMatchObject({ peer: 'ssh', reason: 'AuthFailed', retryable: false });
      expect(err.message).toContain(`root@127.0.0.1:${h.port} (exec "true")`);
      const keyBody = key.toString('utf8').split('\n')[1]!;
      expect(JSON.stringify({ message: err.message, stack: err.stack })).not.toContain(keyBody.slice(0, 20));
    } finally {
      await wrong.close();
    }
    const garbled = new SshClient({ privateKey: Buffer.from('not a key') });
    const err = await rejection(garbled.exec({ host: info.hosts[0]!.host, port: info.hosts[0]!.port }, 'true'));
    expect(err).toMatchObject({ reason: 'AuthFailed', retryable: false });
    await garbled.close();
  });

  it('rejects a host whose key is not the one in known_hosts', async () => {
    const h = info.hosts[0]!;
    const knownHosts = join(scratch, 'known_hosts');
    const otherKey = join(scratch, 'other_host_key');
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', otherKey]);
    const pub = readFileSync(`${otherKey}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
    writeFileSync(knownHosts, `[127.0.0.1]:${h.port} ${pub}\n`);
    const strict = new SshClient({ privateKey: { path: info.clientKeyPath }, knownHostsPath: knownHosts });
    try {
      const err = await rejection(strict.exec({ host: h.host, port: h.port }, 'true'));
      expect(err).toMatchObject({ reason: 'HostKeyMismatch', retryable: false });
    } finally {
      await strict.close();
    }
  });

  it('reports a host that is down as retryable Unreachable', async () => {
    const port = await freePort();
    const err = await rejection(client.exec({ host: '127.0.0.1', port }, 'true'));
    expect(err).toMatchObject({ peer: 'ssh', reason: 'Unreachable', retryable: true });
    expect(err.message).toContain(`127.0.0.1:${port}`);
    expect(err.message).toContain('ECONNREFUSED');
  });

  it('never runs more sessions on one host than its limit, over one reused connection', async () => {
    const limited = new SshClient({ privateKey: { path: info.clientKeyPath }, perHostLimit: 2 });
    const h = info.hosts[2]!;
    const dir = join(h.root, 'opt', 'icn-test', run, 'concurrency');
    // Every command raises a shared counter on the host, records its highest value, waits, and lowers it.
    const counter =
      `d="$HOST_ROOT/opt/icn-test/${run}/concurrency"; mkdir -p "$d"; ` +
      `flock "$d/lock" sh -c 'c=$(($(cat "$1/now" 2>/dev/null || echo 0)+1)); echo $c > "$1/now"; ` +
      `m=$(cat "$1/max" 2>/dev/null || echo 0); [ $c -gt $m ] && echo $c > "$1/max"; true' _ "$d"; ` +
      `sleep 0.3; flock "$d/lock" sh -c 'echo $(($(cat "$1/now")-1)) > "$1/now"' _ "$d"`;
    try {
      const results = await Promise.all(
        Array.from({ length: 10 }, () => limited.execOrThrow({ host: h.host, port: h.port }, counter)),
      );
      expect(results).toHaveLength(10);
      expect(readFileSync(join(dir, 'max'), 'utf8').trim()).toBe('2');
      expect(readFileSync(join(dir, 'now'), 'utf8').trim()).toBe('0');
      expect(limited.openConnections).toBe(1);
    } finally {
      await limited.close();
    }
  });

  it('keeps to the global connection limit by closing idle connections', async () => {
    const one = new SshClient({ privateKey: { path: info.clientKeyPath }, maxConnections: 1 });
    let most = 0;
    try {
      const names = await Promise.all(
        info.hosts.map(async (h) => {
          const r = await one.execOrThrow({ host: h.host, port: h.port }, 'echo "$HOST_NAME"');
          most = Math.max(most, one.openConnections);
          return r.stdout.trim();
        }),
      );
      expect(names).toEqual(info.hosts.map((h) => h.name));
      expect(most).toBe(1);
    } finally {
      await one.close();
    }
  });
});
