import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A tiny real HTTP server on loopback answering fixed statuses per path, for endpoint probes. */
export async function startHttpPeer(
  routes: Record<string, number>,
): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer((req, res) => {
    res.statusCode = routes[req.url ?? ''] ?? 404;
    res.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise((resolve) => {
        server.close(() => {
          resolve();
        });
      }),
  };
}

/** A loopback port with nothing listening: bind, note the port, release it. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
