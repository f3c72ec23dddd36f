/**
 * SSH to compute nodes through a pool: one connection per host, reused for every command and upload to it, at most
 * `perHostLimit` sessions (exec or sftp channels) at once on each, at most `maxConnections` open in all (idle ones
 * are closed to make room, and after `idleTimeoutMs`). Keepalives detect a host that vanished mid-step.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, readFileSync } from 'node:fs';
import { posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Client, type ClientChannel, type SFTPWrapper } from 'ssh2';
import type { Logger } from '../../observability/logger.ts';
import { classifySshError, describeCommand, sshError } from './errors.ts';
import { KnownHosts } from './known-hosts.ts';
import { Limiter } from './limiter.ts';

export interface SshTarget {
  host: string;
  /** 22 when absent. */
  port?: number;
}

export interface SshClientOptions {
  /** The login user on every host; root when absent. */
  user?: string;
  /** The private key itself or the path of its file; read once, kept in memory, never logged nor in errors. */
  privateKey: Buffer | { path: string };
  passphrase?: string;
  /**
   * When given, a host must present the key listed for it there (HostKeyMismatch otherwise). Without it any host key
   * is accepted, as freshly installed hosts have keys nobody has recorded yet.
   */
  knownHostsPath?: string;
  /** Sessions (commands and uploads) at once on one host; OpenSSH accepts 10 per connection by default. */
  perHostLimit?: number;
  /** Open connections in all. */
  maxConnections?: number;
  idleTimeoutMs?: number;
  connectTimeoutMs?: number;
  keepaliveIntervalMs?: number;
  /** Unanswered keepalives before the connection counts as lost. */
  keepaliveCountMax?: number;
  logger?: Pick<Logger, 'debug' | 'warn'>;
}

export interface ExecOptions {
  /** The command is killed and the call fails (retryable Timeout) past this. */
  timeoutMs?: number;
  stdin?: string | Buffer;
  /** Output kept per stream; the rest is dropped and `truncated` set. */
  maxOutputBytes?: number;
}

export interface ExecResult {
  /** null when the command ended by a signal. */
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  truncated: boolean;
}

export interface UploadOptions {
  /** The file's known sha256 (hex), e.g. an artifact's digest; computed from the local file when absent. */
  sha256?: string;
  /** File mode on the host, e.g. 0o755. */
  mode?: number;
}

export interface UploadResult {
  /** The absolute path of the file on the host. */
  path: string;
  sha256: string;
  bytes: number;
}

interface Connection {
  key: string;
  client: Client;
  ready: Promise<void>;
  /** Connected and authenticated; one still connecting is never closed to make room. */
  isReady: boolean;
  sessions: number;
  closed: boolean;
  lastUsed: number;
  idleTimer?: NodeJS.Timeout;
  /** Fails every operation running on this connection when it drops. */
  onLost: Set<(cause: unknown) => void>;
}

const defaults = {
  user: 'root',
  perHostLimit: 8,
  maxConnections: 256,
  idleTimeoutMs: 30_000,
  connectTimeoutMs: 20_000,
  keepaliveIntervalMs: 10_000,
  keepaliveCountMax: 3,
  maxOutputBytes: 4 * 2 ** 20,
};

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`;
}

interface ChannelInternals {
  outgoing?: { id: number; state: string };
  _client?: { _protocol?: { signal: (id: number, name: string) => void } };
}

/**
 * Asks sshd to SIGKILL a channel's command (honoured for non-root logins only). ssh2's Channel.signal() does nothing
 * once our side has sent EOF (closed the command's stdin), though SSH allows requests then; so the request goes
 * through its protocol object directly.
 */
function killChannel(stream: ClientChannel): void {
  const internals = stream as unknown as ChannelInternals;
  try {
    const state = internals.outgoing?.state;
    if (internals.outgoing && (state === 'open' || state === 'eof')) {
      internals._client?._protocol?.signal(internals.outgoing.id, 'KILL');
    }
  } catch {
    // The channel is closing already.
  }
}

/** The `[x]` keeps pgrep from matching the command line of this very script, which contains the pattern. */
function killScript(marker: string): string {
  const pattern = `icn-exec-[${marker.slice(0, 1)}]${marker.slice(1)}`;
  return `for p in $(pgrep -f -- '${pattern}'); do pkill -KILL -s "$p"; done; true`;
}

async function fileSha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(path), hash);
  return hash.digest('hex');
}

function sftpCall<T>(run: (cb: (err: Error | null | undefined, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    run((err, value) => {
      if (err) reject(err);
      else resolve(value);
    });
  });
}

export class SshClient {
  readonly user: string;
  readonly #privateKey: Buffer;
  readonly #passphrase: string | undefined;
  readonly #knownHosts: KnownHosts | undefined;
  readonly #opts: Required<Omit<SshClientOptions, 'privateKey' | 'passphrase' | 'knownHostsPath' | 'logger' | 'user'>>;
  readonly #logger: Pick<Logger, 'debug' | 'warn'> | undefined;
  readonly #connections = new Map<string, Connection>();
  readonly #hostLimiters = new Map<string, Limiter>();
  /** Callers waiting for the number of connections to drop below maxConnections, or for one to become idle. */
  #slotWaiters: (() => void)[] = [];
  #closed = false;

  constructor(opts: SshClientOptions) {
    this.user = opts.user ?? defaults.user;
    try {
      this.#privateKey = Buffer.isBuffer(opts.privateKey) ? opts.privateKey : readFileSync(opts.privateKey.path);
    } catch (err) {
      // The path is not secret; the error of fs names it and nothing else.
      throw sshError('client', `cannot read the private key: ${(err as Error).message}`, 'AuthFailed', err);
    }
    this.#passphrase = opts.passphrase;
    this.#knownHosts = opts.knownHostsPath === undefined ? undefined : new KnownHosts(opts.knownHostsPath);
    this.#logger = opts.logger;
    this.#opts = {
      perHostLimit: opts.perHostLimit ?? defaults.perHostLimit,
      maxConnections: opts.maxConnections ?? defaults.maxConnections,
      idleTimeoutMs: opts.idleTimeoutMs ?? defaults.idleTimeoutMs,
      connectTimeoutMs: opts.connectTimeoutMs ?? defaults.connectTimeoutMs,
      keepaliveIntervalMs: opts.keepaliveIntervalMs ?? defaults.keepaliveIntervalMs,
      keepaliveCountMax: opts.keepaliveCountMax ?? defaults.keepaliveCountMax,
    };
    if (!Number.isInteger(this.#opts.maxConnections) || this.#opts.maxConnections < 1) {
      throw new Error(`maxConnections must be a positive integer, not ${this.#opts.maxConnections}`);
    }
  }

  /** Open connections, for metrics and tests. */
  get openConnections(): number {
    return this.#connections.size;
  }

  /**
   * Runs `command` through the login shell. A non-zero exit is a result, not an error: the caller reads exitCode.
   * Fails with a PeerError when the host cannot be reached, refuses the key, drops, or the command times out.
   */
  async exec(target: SshTarget, command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const where = this.#where(target, `exec "${describeCommand(command)}"`);
    return this.#withSession(target, where, (conn) => this.#exec(conn, where, command, opts));
  }

  /** Like exec, but a non-zero exit fails (non-retryable CommandFailed) with the end of stderr. */
  async execOrThrow(target: SshTarget, command: string, opts: ExecOptions = {}): Promise<ExecResult> {
    const result = await this.exec(target, command, opts);
    if (result.exitCode !== 0) {
      const how =
        result.exitCode === null ? `was killed by ${result.signal ?? 'a signal'}` : `exited ${result.exitCode}`;
      const tail = (result.stderr.trim() || result.stdout.trim()).slice(-1000);
      throw sshError(
        this.#where(target, `exec "${describeCommand(command)}"`),
        `command ${how}${tail ? `: ${tail}` : ''}`,
        'CommandFailed',
      );
    }
    return result;
  }

  /**
   * Copies a local file to `remotePath` on the host (relative paths start in the sftp server's folder), streaming
   * it, creating the missing parent folders. The file is written beside its target, its sha256 checked on the host
   * with sha256sum, and only then renamed into place: the target is either the whole right file or untouched.
   */
  async upload(
    target: SshTarget,
    localPath: string,
    remotePath: string,
    opts: UploadOptions = {},
  ): Promise<UploadResult> {
    const where = this.#where(target, `upload ${localPath} to ${remotePath}`);
    let expected: string;
    try {
      expected = (opts.sha256 ?? (await fileSha256(localPath))).toLowerCase();
    } catch (err) {
      throw sshError(where, `cannot read the local file: ${(err as Error).message}`, 'LocalFileError', err);
    }
    return this.#withSession(target, where, async (conn) => {
      const sftp = await this.#channel<SFTPWrapper>(where, (cb) => conn.client.sftp(cb));
      let dir: string;
      let temp: string;
      let bytes: number;
      try {
        dir = await this.#mkdirs(sftp, where, posix.dirname(remotePath));
        const name = posix.basename(remotePath);
        temp = posix.join(dir, `.${name}.part-${randomBytes(4).toString('hex')}`);
        await sftpCall<undefined>((cb) => {
          sftp.fastPut(
            localPath,
            temp,
            { concurrency: 64, chunkSize: 32_768, ...(opts.mode !== undefined && { mode: opts.mode }) },
            (err: Error | null | undefined) => {
              cb(err, undefined);
            },
          );
        }).catch((err: unknown) => {
          const e = err as NodeJS.ErrnoException;
          // fastPut reports local read errors with the fs code; everything else is the session failing.
          if (e.syscall !== undefined && e.path === localPath) {
            throw sshError(where, `cannot read the local file: ${e.message}`, 'LocalFileError', err);
          }
          throw classifySshError(err, where, 'session');
        });
        bytes = (
          await sftpCall<{ size: number }>((cb) => {
            sftp.stat(temp, cb);
          })
        ).size;
      } finally {
        try {
          sftp.end();
        } catch {
          // The connection is gone; the error that matters is already on its way.
        }
      }
      const finalPath = posix.join(dir, posix.basename(remotePath));
      const script =
        `h=$(sha256sum -- ${shellQuote(temp)} | cut -c1-64) || exit 2; echo "$h"; ` +
        `if [ "$h" = ${shellQuote(expected)} ]; then mv -f -- ${shellQuote(temp)} ${shellQuote(finalPath)}; ` +
        `else rm -f -- ${shellQuote(temp)}; exit 3; fi`;
      const check = await this.#exec(conn, where, script, {});
      const actual = check.stdout.trim();
      if (check.exitCode === 3) {
        throw sshError(
          where,
          `sha256 mismatch on the host: expected ${expected}, the host computed ${actual} (${bytes} bytes written); the copy was removed`,
          'ChecksumMismatch',
        );
      }
      if (check.exitCode !== 0) {
        throw sshError(
          where,
          `checking or moving the uploaded file failed: ${check.stderr.trim().slice(-500)}`,
          'RemoteFileError',
        );
      }
      return { path: finalPath, sha256: actual, bytes };
    });
  }

  /** Closes every connection; later calls fail. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const conn of this.#connections.values()) this.#drop(conn);
    for (const wake of this.#slotWaiters.splice(0)) wake();
  }

  #where(target: SshTarget, operation: string): string {
    return `${this.user}@${target.host}:${target.port ?? 22} (${operation})`;
  }

  async #withSession<T>(target: SshTarget, where: string, run: (conn: Connection) => Promise<T>): Promise<T> {
    if (this.#closed) throw sshError(where, 'the SSH client is closed', 'Closed');
    const key = `${target.host}:${target.port ?? 22}`;
    let limiter = this.#hostLimiters.get(key);
    if (!limiter) {
      limiter = new Limiter(this.#opts.perHostLimit);
      this.#hostLimiters.set(key, limiter);
    }
    const release = await limiter.acquire();
    let conn: Connection | undefined;
    try {
      conn = await this.#connection(key, target, where);
      conn.sessions++;
      clearTimeout(conn.idleTimer);
      const active = conn;
      let onLost: ((cause: unknown) => void) | undefined;
      const lost = new Promise<never>((_, reject) => {
        onLost = (cause) => {
          reject(classifySshError(cause, where, 'session'));
        };
        active.onLost.add(onLost);
      });
      try {
        return await Promise.race([run(active), lost]);
      } catch (err) {
        throw classifySshError(err, where, 'session');
      } finally {
        if (onLost) active.onLost.delete(onLost);
      }
    } finally {
      if (conn) this.#sessionEnded(conn);
      release();
      if (limiter.unused) this.#hostLimiters.delete(key);
    }
  }

  #sessionEnded(conn: Connection): void {
    conn.sessions--;
    conn.lastUsed = Date.now();
    if (conn.sessions > 0 || conn.closed) return;
    conn.idleTimer = setTimeout(() => {
      if (conn.sessions === 0) this.#drop(conn);
    }, this.#opts.idleTimeoutMs);
    conn.idleTimer.unref();
    // An idle connection can be closed to make room for another host.
    this.#wakeSlotWaiters();
  }

  #wakeSlotWaiters(): void {
    for (const wake of this.#slotWaiters.splice(0)) wake();
  }

  async #connection(key: string, target: SshTarget, where: string): Promise<Connection> {
    for (;;) {
      if (this.#closed) throw sshError(where, 'the SSH client is closed', 'Closed');
      const existing = this.#connections.get(key);
      if (existing) {
        await this.#ready(existing, where);
        if (!existing.closed) return existing;
        continue;
      }
      if (this.#connections.size >= this.#opts.maxConnections) {
        const idle = [...this.#connections.values()]
          .filter((c) => c.isReady && c.sessions === 0 && !c.closed)
          .sort((a, b) => a.lastUsed - b.lastUsed)[0];
        if (idle) this.#drop(idle);
        else {
          await new Promise<void>((resolve) => this.#slotWaiters.push(resolve));
          continue;
        }
      }
      const conn = this.#open(key, target);
      await this.#ready(conn, where);
      return conn;
    }
  }

  /** Waits for a connection, classifying its failure for this caller's own operation. */
  async #ready(conn: Connection, where: string): Promise<void> {
    try {
      await conn.ready;
    } catch (err) {
      throw classifySshError(err, where, 'connect');
    }
  }

  /** Starts connecting; `ready` rejects with ssh2's own error, which each waiter classifies. */
  #open(key: string, target: SshTarget): Connection {
    const client = new Client();
    const conn: Connection = {
      key,
      client,
      ready: Promise.resolve(),
      isReady: false,
      sessions: 0,
      closed: false,
      lastUsed: Date.now(),
      onLost: new Set(),
    };
    this.#connections.set(key, conn);
    const port = target.port ?? 22;
    conn.ready = new Promise<void>((resolve, reject) => {
      let lastError: Error | undefined;
      client.on('ready', () => {
        conn.isReady = true;
        this.#logger?.debug({ host: target.host, port }, 'ssh connection ready');
        resolve();
      });
      client.on('error', (err) => {
        lastError = err;
        if (!conn.isReady) {
          this.#drop(conn);
          reject(err);
        } else {
          this.#lost(conn, err);
        }
      });
      client.on('close', () => {
        if (!conn.isReady) {
          this.#drop(conn);
          reject(lastError ?? new Error('connection closed before it was ready'));
        } else {
          this.#lost(conn, lastError ?? new Error('the host closed the connection'));
        }
      });
      try {
        client.connect({
          host: target.host,
          port,
          username: this.user,
          privateKey: this.#privateKey,
          ...(this.#passphrase !== undefined && { passphrase: this.#passphrase }),
          readyTimeout: this.#opts.connectTimeoutMs,
          keepaliveInterval: this.#opts.keepaliveIntervalMs,
          keepaliveCountMax: this.#opts.keepaliveCountMax,
          hostVerifier: (key: Buffer) => this.#knownHosts?.accepts(target.host, port, key) ?? true,
        });
      } catch (err) {
        // ssh2 throws at once on a key it cannot parse; its message names the problem, not the key.
        this.#drop(conn);
        reject(err instanceof Error ? err : new Error(String(err)));
      }
    });
    // A rejection here is also seen by the caller awaiting conn.ready; this keeps others from an unhandled one.
    conn.ready.catch(() => undefined);
    return conn;
  }

  #lost(conn: Connection, cause: unknown): void {
    if (!conn.closed) {
      this.#logger?.warn({ connection: conn.key, error: (cause as Error).message }, 'ssh connection lost');
    }
    this.#drop(conn);
    for (const fail of [...conn.onLost]) fail(cause);
    conn.onLost.clear();
  }

  #drop(conn: Connection): void {
    if (this.#connections.get(conn.key) === conn) this.#connections.delete(conn.key);
    if (conn.closed) return;
    conn.closed = true;
    clearTimeout(conn.idleTimer);
    conn.client.end();
    this.#wakeSlotWaiters();
  }

  async #channel<T>(where: string, open: (cb: (err: Error | undefined, channel: T) => void) => void): Promise<T> {
    return new Promise((resolve, reject) => {
      try {
        open((err, channel) => {
          if (err) reject(classifySshError(err, where, 'session'));
          else resolve(channel);
        });
      } catch (err) {
        // ssh2 throws "Not connected" synchronously once the socket is gone.
        reject(classifySshError(err, where, 'session'));
      }
    });
  }

  async #exec(conn: Connection, where: string, command: string, opts: ExecOptions): Promise<ExecResult> {
    const max = opts.maxOutputBytes ?? defaults.maxOutputBytes;
    // A command that may have to be killed carries a marker in its command line to find it by on the host.
    const marker = opts.timeoutMs === undefined ? undefined : randomBytes(6).toString('hex');
    const line = marker === undefined ? command : `: icn-exec-${marker}; ${command}`;
    return new Promise<ExecResult>((resolve, reject) => {
      // Listeners are attached inside ssh2's callback, not after an await: a quick command's exit status can arrive
      // in the same socket read as the channel's confirmation, and would be missed.
      const onStream = (stream: ClientChannel): void => {
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        let outBytes = 0;
        let errBytes = 0;
        let truncated = false;
        let exit: { code: number | null; signal: string | null } | undefined;
        let timer: NodeJS.Timeout | undefined;
        let expired = false;
        if (opts.timeoutMs !== undefined) {
          timer = setTimeout(() => {
            expired = true;
            const timedOut = sshError(where, `command did not finish within ${opts.timeoutMs} ms; killed`, 'Timeout');
            killChannel(stream);
            stream.close();
            // Closing the channel alone would leave the command running, and OpenSSH refuses signal requests in a
            // root session: kill its whole session (sshd gives each command its own) by the marker. The session
            // slot stays held meanwhile, so the per-host limit also counts this clean-up.
            this.#exec(conn, where, killScript(marker ?? ''), {})
              .catch(() => undefined)
              .finally(() => {
                reject(timedOut);
              });
          }, opts.timeoutMs);
        }
        stream.on('data', (chunk: Buffer) => {
          if (outBytes + chunk.length <= max) out.push(chunk);
          else truncated = true;
          outBytes += chunk.length;
        });
        stream.stderr.on('data', (chunk: Buffer) => {
          if (errBytes + chunk.length <= max) err.push(chunk);
          else truncated = true;
          errBytes += chunk.length;
        });
        stream.on('exit', (code: number | null, signal?: string) => {
          exit = { code: typeof code === 'number' ? code : null, signal: signal ?? null };
        });
        stream.on('close', () => {
          clearTimeout(timer);
          if (expired) return;
          if (!exit) {
            reject(sshError(where, 'the session closed before the command reported its exit status', 'ConnectionLost'));
            return;
          }
          resolve({
            exitCode: exit.code,
            signal: exit.signal,
            stdout: Buffer.concat(out).toString('utf8'),
            stderr: Buffer.concat(err).toString('utf8'),
            truncated,
          });
        });
        if (opts.stdin !== undefined) stream.end(opts.stdin);
        else stream.end();
      };
      try {
        conn.client.exec(line, (err, stream) => {
          if (err) reject(classifySshError(err, where, 'session'));
          else onStream(stream);
        });
      } catch (err) {
        // ssh2 throws "Not connected" synchronously once the socket is gone.
        reject(classifySshError(err, where, 'session'));
      }
    });
  }

  /** mkdir -p over sftp; returns the folder's absolute path on the host. */
  async #mkdirs(sftp: SFTPWrapper, where: string, dir: string): Promise<string> {
    const parts = dir.split('/').filter((p) => p !== '' && p !== '.');
    let current = dir.startsWith('/') ? '/' : '.';
    for (const part of parts) {
      current = posix.join(current, part);
      const path = current;
      try {
        await sftpCall<undefined>((cb) => {
          sftp.mkdir(path, (e) => {
            cb(e, undefined);
          });
        });
      } catch (mkdirError) {
        // Already there (sftp reports it as a generic failure): fine if it is a folder.
        const stats = await sftpCall<{ isDirectory: () => boolean }>((cb) => {
          sftp.stat(path, cb);
        }).catch(() => undefined);
        if (!stats?.isDirectory()) {
          throw sshError(where, `cannot create folder ${path}: ${(mkdirError as Error).message}`, 'RemoteFileError');
        }
      }
    }
    return sftpCall<string>((cb) => {
      sftp.realpath(current, cb);
    });
  }
}
