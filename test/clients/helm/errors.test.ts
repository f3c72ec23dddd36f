// Needs: the helm binary (tools cache); no cluster: the API server here is a closed port.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { ensureGoTool, helm } from '../../../deploy/dev/tools.ts';
import { PeerError } from '../../../src/clients/errors.ts';
import { classifyHelmError, HelmClient, scrub } from '../../../src/clients/helm/index.ts';

let work: string;
let client: HelmClient;

/** A loopback port nothing listens on: bound, then released. */
async function closedPort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (typeof address === 'object' && address !== null) resolve(address.port);
        else reject(new Error('no port'));
      });
    });
  });
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'icn-helm-errors-'));
  const kubeconfig = join(work, 'kubeconfig');
  const server = `https://127.0.0.1:${await closedPort()}`;
  writeFileSync(
    kubeconfig,
    stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'gone', cluster: { server, 'insecure-skip-tls-verify': true } }],
      users: [{ name: 'u', user: { token: 'not-a-real-token' } }],
      contexts: [{ name: 'gone', context: { cluster: 'gone', user: 'u' } }],
      'current-context': 'gone',
    }),
    { mode: 0o600 },
  );
  client = new HelmClient({ helmBinary: join(ensureGoTool(helm), 'helm'), kubeconfigPath: kubeconfig });
}, 600_000);

afterAll(() => {
  client.close();
  rmSync(work, { recursive: true, force: true });
});

async function failure(promise: Promise<unknown>): Promise<PeerError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(PeerError);
    return err as PeerError;
  }
  throw new Error('expected a PeerError, but the call succeeded');
}

describe('HelmClient failures without a cluster', () => {
  it('an unreachable API server is retryable and named in the message', async () => {
    const chart = join(import.meta.dirname, '..', '..', 'fixtures', 'charts', 'icn-test-app');
    const err = await failure(
      client.installOrUpgrade({ release: 'r1', namespace: 'ns1', chart, values: { nodeName: 'n' } }),
    );
    expect(err).toMatchObject({ peer: 'helm', retryable: true, reason: 'Unreachable' });
    expect(err.message).toMatch(
      /^helm upgrade --install of release "r1" in namespace "ns1" failed: .*connection refused/s,
    );
    // Helm's state stays in the client's own folder, and no values file is left in it.
    expect(readdirSync(client.homeDir).filter((f) => f.startsWith('values-'))).toEqual([]);
  });

  it('a missing chart file, a bad name or a missing helm binary fail at once', async () => {
    const missing = await failure(
      client.installOrUpgrade({ release: 'r1', namespace: 'ns1', chart: join(work, 'nope-0.1.0.tgz') }),
    );
    expect(missing).toMatchObject({ retryable: false, reason: 'InvalidChart' });
    const badName = await failure(client.status('--all-namespaces', 'ns1'));
    expect(badName).toMatchObject({ retryable: false, reason: 'InvalidInput' });
    const noBinary = new HelmClient({ helmBinary: join(work, 'no-helm'), kubeconfigPath: join(work, 'kubeconfig') });
    try {
      expect(await failure(noBinary.version())).toMatchObject({ retryable: false, reason: 'HelmMissing' });
    } finally {
      noBinary.close();
    }
  });

  it('packages a chart folder with the version given', async () => {
    const chart = join(import.meta.dirname, '..', '..', 'fixtures', 'charts', 'icn-test-app');
    const tgz = await client.packageChart(chart, work, { version: '0.2.0' });
    expect(tgz).toBe(join(work, 'icn-test-app-0.2.0.tgz'));
    expect(readdirSync(work)).toContain('icn-test-app-0.2.0.tgz');
  });
});

describe('classification and scrubbing of helm output', () => {
  it.each([
    ['Error: UPGRADE FAILED: another operation (install/upgrade/rollback) is in progress', true, 'OperationInProgress'],
    [
      'Error: Kubernetes cluster unreachable: Get "https://10.0.0.1:6443/version": dial tcp: i/o timeout',
      true,
      'Unreachable',
    ],
    ['Error: INSTALLATION FAILED: context deadline exceeded', true, 'Timeout'],
    ['Error: release: not found', false, 'NotFound'],
    ['Error: parse error at (c/templates/x.yaml:6): function "nope" not defined', false, 'InvalidChart'],
    ['Error: something nobody expected', false, 'HelmFailed'],
  ])('%s → retryable %s, %s', (stderr, retryable, reason) => {
    expect(classifyHelmError(stderr)).toEqual({ retryable, reason });
  });

  it('hides long values anywhere and short ones as whole words', () => {
    const out = scrub('Invalid value: "hunter2!x" for key a, and "a\\"b c" and ab', ['hunter2!x', 'a"b c', 'ab']);
    expect(out).toBe('Invalid value: "***" for key a, and "***" and ***');
  });
});
