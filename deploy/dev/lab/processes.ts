/** Long-lived lab processes: started detached with a pid file, so that `lab down` and later runs can find them. */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export function readPid(pidFile: string): number | undefined {
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, 'utf8').trim());
  return Number.isInteger(pid) && pid > 0 && isAlive(pid) ? pid : undefined;
}

/** Starts a command detached from this process, output to a log file; returns its pid (also written to pidFile). */
export function startDetached(
  command: string,
  args: string[],
  opts: { pidFile: string; logFile: string; cwd?: string; env?: NodeJS.ProcessEnv },
): number {
  const out = openSync(opts.logFile, 'a');
  const child = spawn(command, args, {
    detached: true,
    stdio: ['ignore', out, out],
    ...(opts.cwd && { cwd: opts.cwd }),
    env: opts.env ?? process.env,
  });
  child.unref();
  // The child holds its own copy of the log descriptor; keeping ours would leak one per process started.
  closeSync(out);
  if (child.pid === undefined) throw new Error(`could not start ${command}`);
  writeFileSync(opts.pidFile, String(child.pid));
  return child.pid;
}

/** SIGTERM, then SIGKILL after a grace period; removes the pid file. */
export async function stopPid(pidFile: string, graceMs = 5000): Promise<void> {
  const pid = readPid(pidFile);
  if (pid !== undefined) {
    process.kill(pid, 'SIGTERM');
    const deadline = Date.now() + graceMs;
    while (isAlive(pid) && Date.now() < deadline) await sleep(100);
    if (isAlive(pid)) process.kill(pid, 'SIGKILL');
  }
  rmSync(pidFile, { force: true });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A free loopback port (bind to 0, read it, release it). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise((resolve) => server.close(resolve));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

/** Polls until `check` resolves true or the deadline passes; the error names what was awaited. */
export async function waitUntil(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      if (await check()) return;
    } catch (err) {
      last = err;
    }
    await sleep(200);
  }
  throw new Error(`${what} not ready after ${timeoutMs} ms${last instanceof Error ? `: ${last.message}` : ''}`);
}
