// Needs: ironic (lab peer: Debian's Ironic with fake-hardware)
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { DatabaseSync } from 'node:sqlite';
import type { IronicLabInfo } from '../../../deploy/dev/lab/ironic.ts';
import { PeerError } from '../../../src/clients/errors.ts';
import { IronicClient, withRetry } from '../../../src/clients/ironic/index.ts';
import { closedPort } from '../../support/http-peer.ts';
import { ironicLab, removeNode } from './lab.ts';

let client: IronicClient;
let info: IronicLabInfo;
const twice = 'it-enroll-twice';
const locked = 'it-locked';

beforeAll(async () => {
  ({ client, info } = await ironicLab());
  await Promise.all([removeNode(client, twice), removeNode(client, locked)]);
});

afterAll(async () => {
  await Promise.all([removeNode(client, twice), removeNode(client, locked)]);
});

async function failure(p: Promise<unknown>): Promise<PeerError> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(PeerError);
  return err as PeerError;
}

async function nodesNamed(name: string): Promise<number> {
  const res = await fetch(`${info.url}/v1/nodes?fields=name`, {
    headers: { 'X-OpenStack-Ironic-API-Version': client.microversion },
  });
  const body = (await res.json()) as { nodes: { name: string }[] };
  return body.nodes.filter((n) => n.name === name).length;
}

describe('Ironic client idempotency and error classification', () => {
  test('the pinned microversion is within the server range', async () => {
    const range = await client.checkVersion();
    expect(range).toEqual(info.microversion);
    const tooNew = new IronicClient({ url: info.url, microversion: '1.999' });
    const err = await failure(tooNew.checkVersion());
    expect(err.reason).toBe('UnsupportedVersion');
    // Ironic itself refuses a microversion it does not know, on every call.
    const refused = await failure(tooNew.find('anything'));
    expect(refused.reason).toBe('UnsupportedVersion');
    expect(refused.retryable).toBe(false);
  });

  test('enrolling the same name twice returns the same node', async () => {
    const spec = { name: twice, driver: 'fake-hardware' };
    const [a, b] = await Promise.all([client.enroll(spec), client.enroll(spec)]);
    const c = await client.enroll(spec);
    expect(b.uuid).toBe(a.uuid);
    expect(c.uuid).toBe(a.uuid);
    expect(await nodesNamed(twice)).toBe(1);
  });

  test('a missing node is a non-retryable NotFound naming it', async () => {
    const err = await failure(client.get('it-no-such-node'));
    expect(err.peer).toBe('ironic');
    expect(err.reason).toBe('NotFound');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('it-no-such-node');
    expect(err.message).toContain('could not be found');
    expect(await client.find('it-no-such-node')).toBeUndefined();
  });

  test('bad input and invalid transitions are non-retryable BadRequest with Ironic’s words', async () => {
    const bogus = await failure(client.enroll({ name: 'it-bogus-driver', driver: 'no-such-hardware' }));
    expect(bogus.reason).toBe('BadRequest');
    expect(bogus.retryable).toBe(false);
    expect(bogus.message).toContain('it-bogus-driver');
    expect(bogus.message).toContain('no-such-hardware');

    await client.enroll({ name: twice, driver: 'fake-hardware' });
    const early = await failure(client.deploy(twice));
    expect(early.reason).toBe('BadRequest');
    expect(early.message).toMatch(/can not be performed on node .* while it is in state "enroll"/);
    expect((await client.get(twice)).provision_state).toBe('enroll');
  });

  test('a node locked by another conductor is a retryable NodeLocked, and the retry succeeds', async () => {
    await client.enroll({ name: locked, driver: 'fake-hardware' });
    // Hold the node's lock as a second conductor would, in Ironic's own database; Ironic itself then refuses.
    const db = new DatabaseSync(info.database, { timeout: 5000 });
    const hold = db.prepare('UPDATE nodes SET reservation = ? WHERE name = ?');
    hold.run('other-conductor', locked);
    const errors: PeerError[] = [];
    try {
      expect((await client.get(locked)).reservation).toBe('other-conductor');
      const node = await withRetry(
        () => client.setInstanceInfo(locked, { imageSource: 'http://127.0.0.1:1/os.qcow2' }),
        {
          attempts: 4,
          initialDelayMs: 200,
          onRetry: (err) => {
            errors.push(err);
            hold.run(null, locked); // the other conductor finishes
          },
        },
      );
      expect(node.instance_info.image_source).toBe('http://127.0.0.1:1/os.qcow2');
      expect(node.reservation).toBeNull();
    } finally {
      hold.run(null, locked);
      db.close();
    }
    expect(errors).toHaveLength(1);
    const [first] = errors;
    expect(first?.reason).toBe('NodeLocked');
    expect(first?.retryable).toBe(true);
    expect(first?.message).toContain(locked);
    expect(first?.message).toContain('other-conductor');
  });

  test('waiting past the deadline is a retryable Timeout that says where the node is', async () => {
    await client.enroll({ name: twice, driver: 'fake-hardware' });
    const polled: string[] = [];
    const err = await failure(
      client.waitForProvisionState(twice, 'active', {
        timeoutMs: 600,
        intervalMs: 100,
        onPoll: (n) => {
          polled.push(n.provision_state);
        },
      }),
    );
    expect(err.reason).toBe('Timeout');
    expect(err.retryable).toBe(true);
    expect(err.message).toContain(`still "enroll"`);
    expect(polled.length).toBeGreaterThan(1);
  });

  test('a refused connection is retryable (Unreachable)', async () => {
    const dead = new IronicClient({ url: `http://127.0.0.1:${await closedPort()}` });
    const err = await failure(dead.get('edge-01'));
    expect(err.reason).toBe('Unreachable');
    expect(err.retryable).toBe(true);
    expect(err.message).toContain('edge-01');
    expect(err.message).toContain('ECONNREFUSED');
  });

  test('an Ironic that does not answer in time is a retryable Timeout, and a call answered leaves no timer', async () => {
    // A loopback server that takes every request and never answers: a hung API, which Ironic is not on demand.
    const held: { destroy: () => void }[] = [];
    const hung = createServer((_req, res) => held.push(res));
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(hung.address() as AddressInfo).port}`;
      const slow = new IronicClient({ url, requestTimeoutMs: 300 });
      const err = await failure(slow.get('edge-02'));
      expect(err.reason).toBe('Timeout');
      expect(err.retryable).toBe(true);
      expect(err.message).toContain('edge-02');
      expect(err.message).toContain('within 300 ms');
    } finally {
      for (const res of held) res.destroy();
      await new Promise((resolve) => hung.close(resolve));
    }
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    await client.enroll({ name: twice, driver: 'fake-hardware' });
    await client.get(twice);
    expect(timers()).toBe(before);
  });

  test('a lock lost on release (400 NodeNotLocked) is retryable, and a retried delete finds the node gone', async () => {
    // Ironic on SQLite raises this when its retried lock release finds the first release done (CI saw it on DELETE);
    // it cannot be provoked on demand, so a loopback server answers the way Ironic's API did, then as after the delete.
    const calls: string[] = [];
    const server = createServer((req, res) => {
      calls.push(`${req.method} ${req.url}`);
      const first = calls.length === 1;
      res.writeHead(first ? 400 : 404, { 'content-type': 'application/json' });
      const fault = first ? 'Node 1b6e found not to be locked on release' : 'Node edge-03 could not be found.';
      res.end(JSON.stringify({ error_message: JSON.stringify({ faultstring: fault }) }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const lossy = new IronicClient({ url: `http://127.0.0.1:${port}` });
      const seen: PeerError[] = [];
      await withRetry(() => lossy.delete('edge-03'), { initialDelayMs: 10, onRetry: (err) => seen.push(err) });
      expect(seen.map((e) => [e.reason, e.retryable])).toEqual([['LockLost', true]]);
      expect(seen[0]?.message).toContain('edge-03');
      expect(calls).toEqual(['DELETE /v1/nodes/edge-03', 'DELETE /v1/nodes/edge-03']);
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });

  test('a 503 from the API is retryable (Unavailable) and carries the server’s message', async () => {
    // Ironic itself does not answer 503 on demand; a loopback server answering as its WSGI front would does.
    const server = createServer((_req, res) => {
      res.writeHead(503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error_message: JSON.stringify({ faultstring: 'conductor restarting' }) }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as AddressInfo;
      const err = await failure(new IronicClient({ url: `http://127.0.0.1:${port}` }).manage('edge-02'));
      expect(err.reason).toBe('Unavailable');
      expect(err.retryable).toBe(true);
      expect(err.message).toContain('edge-02');
      expect(err.message).toContain('conductor restarting');
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
