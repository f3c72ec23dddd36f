/**
 * HTTPS to the API server with the credentials of a kubeconfig (read by @kubernetes/client-node, so certificates,
 * tokens and exec plugins all work). Plain requests and line-delimited watch streams; every failure becomes a
 * classified PeerError naming what was being done.
 */
import { Agent, request as httpsRequest, type RequestOptions } from 'node:https';
import type { IncomingMessage } from 'node:http';
import { createSecureContext, type SecureContext } from 'node:tls';
import { KubeConfig } from '@kubernetes/client-node';
import { httpError, networkError } from './errors.ts';

export interface RequestSpec {
  method: 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  path: string;
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  /** Names the action and object in error messages, e.g. `get Cluster site-a/edge-1`. */
  what: string;
  signal?: AbortSignal;
  timeoutMs?: number;
}

/** A kubeconfig file's path, or a kubeconfig's content (kept in memory, never written out). */
export type KubeconfigSource = string | { kubeconfig: string };

export class KubeTransport {
  readonly server: string;
  readonly #config: KubeConfig;
  #agent: Agent | undefined;
  #tls: SecureContext | undefined;

  constructor(source: KubeconfigSource) {
    this.#config = new KubeConfig();
    if (typeof source === 'string') this.#config.loadFromFile(source);
    else this.#config.loadFromString(source.kubeconfig);
    const cluster = this.#config.getCurrentCluster();
    if (cluster === null) {
      throw new Error(`kubeconfig ${typeof source === 'string' ? source : '(in memory)'} has no current cluster`);
    }
    this.server = cluster.server.replace(/\/+$/, '');
  }

  /** Per request, so that expiring tokens (exec plugins) are refreshed; the connection pool is shared. */
  async #options(spec: RequestSpec, headers: Record<string, string>): Promise<RequestOptions> {
    const opts: RequestOptions = { headers: { ...headers } };
    await this.#config.applyToHTTPSOptions(opts);
    // The CA and client certificate parsed once: without a context of its own, every new connection (a server that
    // closed an idle one, a watch) parses them again (measured: ≈ 2% of a fleet worker's main thread).
    this.#tls ??= createSecureContext({
      ...(opts.ca !== undefined && { ca: opts.ca }),
      ...(opts.cert !== undefined && { cert: opts.cert }),
      ...(opts.key !== undefined && { key: opts.key }),
    });
    // client-node's own agent does not keep connections alive: one TLS handshake per call is wasted CPU at fleet scale.
    this.#agent ??= new Agent({
      keepAlive: true,
      secureContext: this.#tls,
      ...(opts.servername !== undefined && { servername: opts.servername }),
      ...(opts.rejectUnauthorized !== undefined && { rejectUnauthorized: opts.rejectUnauthorized }),
    });
    const url = new URL(this.server + spec.path);
    for (const [k, v] of Object.entries(spec.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    return {
      ...opts,
      agent: this.#agent,
      method: spec.method,
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port,
      path: url.pathname + url.search,
      ...(spec.signal && { signal: spec.signal }),
    };
  }

  #send(spec: RequestSpec, opts: RequestOptions, payload: string | undefined): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = httpsRequest(opts, resolve);
      req.on('error', reject);
      if (spec.timeoutMs !== undefined) {
        req.setTimeout(spec.timeoutMs, () => req.destroy(new Error(`no answer within ${spec.timeoutMs} ms`)));
      }
      req.end(payload);
    });
  }

  /** Returns the decoded JSON body of a 2xx answer; throws a classified PeerError otherwise. */
  async request<T = unknown>(spec: RequestSpec): Promise<T> {
    const payload = spec.body === undefined ? undefined : JSON.stringify(spec.body);
    const headers: Record<string, string> = { accept: 'application/json' };
    if (payload !== undefined) {
      headers['content-type'] = spec.contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(payload));
    }
    let res: IncomingMessage;
    let text: string;
    try {
      res = await this.#send(spec, await this.#options(spec, headers), payload);
      text = await readAll(res);
    } catch (err) {
      throw networkError(spec.what, err);
    }
    const code = res.statusCode ?? 0;
    const body = parseJson(text);
    if (code < 200 || code >= 300) throw httpError(spec.what, code, body ?? text);
    return body as T;
  }

  /**
   * Opens a streaming GET (a watch) and calls `onLine` with each decoded JSON line until the server ends the stream,
   * the connection drops or `signal` aborts. Resolves on a clean end, rejects with a PeerError otherwise; an abort
   * resolves, since the caller asked for it.
   */
  async stream(spec: RequestSpec, onLine: (value: unknown) => void): Promise<void> {
    let res: IncomingMessage;
    try {
      res = await this.#send(spec, await this.#options(spec, { accept: 'application/json' }), undefined);
    } catch (err) {
      if (spec.signal?.aborted === true) return;
      throw networkError(spec.what, err);
    }
    const code = res.statusCode ?? 0;
    if (code < 200 || code >= 300) {
      const text = await readAll(res).catch(() => '');
      throw httpError(spec.what, code, parseJson(text) ?? text);
    }
    res.setEncoding('utf8');
    let buffered = '';
    try {
      for await (const chunk of res as AsyncIterable<string>) {
        buffered += chunk;
        let newline: number;
        while ((newline = buffered.indexOf('\n')) >= 0) {
          const line = buffered.slice(0, newline).trim();
          buffered = buffered.slice(newline + 1);
          if (line !== '') onLine(JSON.parse(line));
        }
      }
    } catch (err) {
      if (spec.signal?.aborted === true) return;
      throw networkError(`${spec.what} (stream dropped)`, err);
    }
  }

  /** Ends every open connection, watches included; the next request opens a new pool. */
  dropConnections(): void {
    this.#agent?.destroy();
    this.#agent = undefined;
  }
}

async function readAll(res: IncomingMessage): Promise<string> {
  res.setEncoding('utf8');
  let text = '';
  for await (const chunk of res as AsyncIterable<string>) text += chunk;
  return text;
}

function parseJson(text: string): unknown {
  if (text === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}
