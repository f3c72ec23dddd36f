/**
 * The one place that talks HTTP to Ironic: pins the API microversion on every call, times calls out, turns every
 * failure into a classified PeerError naming the subject (node name or uuid) and carrying Ironic's own message, and
 * masks every credential the client has been handed before a message or log line leaves this module.
 */
import type { z } from 'zod';
import { requestDeadline } from '../deadline.ts';
import type { PeerError } from '../errors.ts';
import { classifyStatus, ironicError, ironicFault, scrubText } from './errors.ts';

/** Within Debian 12's Ironic 21.4 range (1.1-1.82); 1.81 brings nothing this client relies on beyond 1.6x. */
export const defaultMicroversion = '1.81';

/** pino's Logger satisfies this. */
export interface IronicLogger {
  debug: (obj: object, msg: string) => void;
}

export interface IronicHttpOptions {
  /** Ironic's API root, e.g. http://127.0.0.1:6385 (no /v1). */
  url: string;
  microversion?: string;
  /** Per HTTP call; waiting for a state uses its own deadline. */
  requestTimeoutMs?: number;
  logger?: IronicLogger;
}

export interface RequestOptions {
  /** What the call is about, for messages: `node "edge-01"`, `port 52:54:...`. */
  subject: string;
  /** What the call does, for messages: "enroll", "deploy". */
  operation: string;
  body?: unknown;
}

export class IronicHttp {
  readonly url: string;
  readonly microversion: string;
  readonly #timeoutMs: number;
  readonly #logger: IronicLogger | undefined;
  /** Credential values seen in requests: masked in every error message. */
  readonly #secrets = new Set<string>();

  constructor(opts: IronicHttpOptions) {
    this.url = opts.url.replace(/\/+$/, '');
    this.microversion = opts.microversion ?? defaultMicroversion;
    this.#timeoutMs = opts.requestTimeoutMs ?? 30_000;
    this.#logger = opts.logger;
  }

  rememberSecret(value: string): void {
    if (value.length > 0) this.#secrets.add(value);
  }

  scrub(text: string): string {
    return scrubText(text, this.#secrets);
  }

  error(message: string, classification: Parameters<typeof ironicError>[1], cause?: unknown): PeerError {
    return ironicError(message, classification, this.#secrets, cause);
  }

  /** Returns the parsed body, or undefined for 204 / an empty 202. */
  async request<S extends z.ZodType>(
    method: string,
    path: string,
    schema: S | undefined,
    opts: RequestOptions,
  ): Promise<z.infer<S> | undefined> {
    const started = Date.now();
    const what = `${opts.operation} ${opts.subject}`;
    const deadline = requestDeadline(this.#timeoutMs);
    let res: Response;
    let text: string;
    try {
      res = await fetch(`${this.url}${path}`, {
        method,
        headers: {
          'X-OpenStack-Ironic-API-Version': this.microversion,
          accept: 'application/json',
          ...(opts.body !== undefined && { 'content-type': 'application/json' }),
        },
        ...(opts.body !== undefined && { body: JSON.stringify(opts.body) }),
        signal: deadline.signal,
      });
      text = await res.text();
    } catch (err) {
      throw this.#transportError(what, err, deadline.expired());
    } finally {
      deadline.clear();
    }
    this.#logger?.debug(
      { peer: 'ironic', method, path: this.scrub(path), status: res.status, ms: Date.now() - started },
      'ironic call',
    );
    if (!res.ok) {
      const fault = ironicFault(text) || res.statusText;
      throw this.error(`Ironic ${what} failed (HTTP ${res.status}): ${fault}`, classifyStatus(res.status, fault));
    }
    if (schema === undefined || text.trim() === '') return undefined;
    const parsed = schema.safeParse(JSON.parse(text));
    if (!parsed.success) {
      throw this.error(`Ironic ${what}: unexpected response: ${parsed.error.message}`, {
        retryable: false,
        reason: 'Invalid',
      });
    }
    return parsed.data;
  }

  /** Like request, but a body is required. */
  async requestJson<S extends z.ZodType>(
    method: string,
    path: string,
    schema: S,
    opts: RequestOptions,
  ): Promise<z.infer<S>> {
    const out = await this.request(method, path, schema, opts);
    if (out === undefined) {
      throw this.error(`Ironic ${opts.operation} ${opts.subject}: empty response`, {
        retryable: true,
        reason: 'ServerError',
      });
    }
    return out;
  }

  #transportError(what: string, err: unknown, timedOut: boolean): PeerError {
    const e = err as { name?: string; message?: string; cause?: { code?: string; message?: string } };
    if (timedOut) {
      return this.error(`Ironic ${what}: no answer from ${this.url} within ${this.#timeoutMs} ms`, {
        retryable: true,
        reason: 'Timeout',
      });
    }
    const detail = e.cause?.code ?? e.cause?.message ?? e.message ?? String(err);
    return this.error(
      `Ironic ${what}: cannot reach ${this.url} (${detail})`,
      { retryable: true, reason: 'Unreachable' },
      err,
    );
  }
}

/** Path segment for a node given by name or uuid. */
export function nodePath(ident: string): string {
  return `/v1/nodes/${encodeURIComponent(ident)}`;
}

export function nodeSubject(ident: string): string {
  return `node "${ident}"`;
}
