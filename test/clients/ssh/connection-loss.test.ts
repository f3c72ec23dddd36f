// Needs: real sshd hosts (its own, from the ssh-hosts lab peer's startSshHosts, since it kills them).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import {
  createReadStream,
  existsSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { waitUntil } from '../../../deploy/dev/lab/processes.ts';
import { killSshHost, type SshHostsInfo, startSshHosts, stopSshHosts } from '../../../deploy/dev/lab/ssh-hosts.ts';
import { PeerError } from '../../../src/clients/errors.ts';
import { SshClient } from '../../../src/clients/ssh/index.ts';

let dir: string;
let info: SshHostsInfo;
let client: SshClient;

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'icn-ssh-loss-'));
  info = await startSshHosts({ count: 1, dir });
  client = new SshClient({
    privateKey: { path: info.clientKeyPath },
    knownHostsPath: info.knownHostsPath,
    keepaliveIntervalMs: 1000,
  });
});

afterAll(async () => {
  await client.close();
  await stopSshHosts(dir);
  rmSync(dir, { recursive: true, force: true });
});

describe('SshClient when a host goes away', () => {
  it('fails an upload cut mid-way as retryable ConnectionLost, then succeeds once the host is back', async () => {
    const host = info.hosts[0]!;
    const target = { host: host.host, port: host.port };
    // Large enough to be caught mid-way; sparse, so it costs no disk locally (the host writes real bytes).
    const local = join(dir, 'large.bin');
    writeFileSync(local, 'head');
    truncateSync(local, 256 * 2 ** 20);
    const digest = await sha256(local);
    const remote = 'var/lib/icn/large.bin';
    const folder = join(host.root, 'var', 'lib', 'icn');

    const upload = client.upload(target, local, remote, { sha256: digest });
    const outcome = upload.then(
      () => undefined,
      (e: unknown) => e,
    );
    // Cut the host off once part of the file has landed on its disk.
    await waitUntil(
      'part of the upload on the host',
      async () =>
        existsSync(folder) &&
        readdirSync(folder).some((f) => f.includes('.part-') && statSync(join(folder, f)).size > 8 * 2 ** 20),
      30_000,
    );
    await killSshHost(dir, host.name);
    const err = await outcome;
    expect(err).toBeInstanceOf(PeerError);
    expect(err).toMatchObject({ peer: 'ssh', reason: 'ConnectionLost', retryable: true });
    expect((err as PeerError).message).toContain(`127.0.0.1:${host.port} (upload ${local} to ${remote})`);
    expect(existsSync(join(folder, 'large.bin'))).toBe(false);

    // While it is down, a new attempt cannot connect: retryable too.
    const down = await client.exec(target, 'true').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(down).toMatchObject({ reason: 'Unreachable', retryable: true });

    // The host comes back on the same port; the retry (what Temporal would do) succeeds.
    const again = await startSshHosts({ count: 1, dir });
    expect(again.hosts[0]!.port).toBe(host.port);
    const done = await client.upload(target, local, remote, { sha256: digest });
    expect(done).toEqual({ path: join(folder, 'large.bin'), sha256: digest, bytes: 256 * 2 ** 20 });
    expect(await sha256(join(folder, 'large.bin'))).toBe(digest);
  });
});
