// Needs: real sshd hosts (2 of its own, from the ssh-hosts lab peer's startSshHosts, since it kills one).
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { killSshHost, type SshHostsInfo, startSshHosts, stopSshHosts } from '../../deploy/dev/lab/ssh-hosts.ts';
import { labHosts, onHost, startBpa, type TestBpa, waitUntil } from './support.ts';

let dir: string;
let info: SshHostsInfo;
let bpa: TestBpa;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'icn-bpa-loss-'));
  info = await startSshHosts({ count: 2, dir: join(dir, 'lab') });
  // Large enough to be caught mid-way, and still sent from memory on the command's stdin, the BPA's usual path.
  bpa = await startBpa(join(dir, 'bpa'), info, { ICN_BPA_INLINE_MAX_BYTES: String(512 * 2 ** 20) });
});

afterAll(async () => {
  await bpa.close();
  await stopSshHosts(join(dir, 'lab'));
  rmSync(dir, { recursive: true, force: true });
});

describe('BPA when a host drops mid-upload', () => {
  it('retries the host once it is back, and installs once', async () => {
    const content = Buffer.alloc(96 * 2 ** 20, 7);
    content.write('icn-bpa loss test');
    const file = join(dir, 'big.bin');
    writeFileSync(file, content);
    const sha256 = createHash('sha256').update(content).digest('hex');
    await bpa.client.uploadArtifact(
      { type: 'binary-package', name: 'big', version: '1.0.0', sha256, size: content.length, metadata: {} },
      file,
    );
    const pkg = {
      name: 'big',
      version: '1.0.0',
      artifact: { sha256 },
      install: 'n=$(cat "$HOST_ROOT/big.count" 2>/dev/null || echo 0); echo $((n + 1)) > "$HOST_ROOT/big.count"',
      verify: 'test -f "$HOST_ROOT/big.count"',
    };
    const victim = info.hosts[0]!;
    const folder = join(victim.root, 'var/lib/icn-bpa/artifacts');
    const job = await bpa.client.startJob({ id: 'loss', hosts: labHosts(info), packages: [pkg] });

    await waitUntil(
      'part of the artifact on the host',
      async () =>
        existsSync(folder) &&
        readdirSync(folder).some((f) => f.includes('.part-') && statSync(join(folder, f)).size > 8 * 2 ** 20),
      30_000,
    );
    await killSshHost(join(dir, 'lab'), victim.name);
    // Down for a moment: the attempt in flight fails, the next ones cannot connect, then it is back on its port.
    await new Promise((r) => setTimeout(r, 1000));
    const again = await startSshHosts({ count: 2, dir: join(dir, 'lab') });
    expect(again.hosts[0]!.port).toBe(victim.port);

    const done = await bpa.bpa.engine.waitFor(job.id);
    expect(done.state).toBe('succeeded');
    const progress = done.hosts.find((h) => h.host === victim.name)!;
    expect(progress.attempts).toBeGreaterThanOrEqual(2);
    expect(progress.packages).toEqual([{ name: 'big', version: '1.0.0', outcome: 'installed' }]);
    for (const h of info.hosts) {
      expect(onHost(h.root, 'big.count')).toBe('1');
      expect(onHost(h.root, 'var/lib/icn-bpa/packages/big')).toBe(`1.0.0 ${sha256}`);
      expect(
        createHash('sha256')
          .update(
            await import('node:fs').then((fs) => fs.readFileSync(join(h.root, 'var/lib/icn-bpa/artifacts', sha256))),
          )
          .digest('hex'),
      ).toBe(sha256);
    }
    // The copy cut off by the drop was cleared by the retry.
    expect(readdirSync(folder).filter((f) => f.includes('.part-'))).toEqual([]);
  });
});
