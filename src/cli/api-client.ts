import { createReadStream } from 'node:fs';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { pipeline } from 'node:stream/promises';

export interface FieldIssue {
  field: string;
  message: string;
}

/** The trigger API as icnctl sees it: JSON over HTTP with a bearer token, errors carrying the API's own message. */
export class ApiError extends Error {
  override name = 'ApiError';
  readonly status: number | undefined;
  /** The fields at fault, when the API named them; icnctl prints one `field: message` per line. */
  readonly issues: FieldIssue[];
  constructor(message: string, status?: number, issues: FieldIssue[] = []) {
    super(message);
    this.status = status;
    this.issues = issues;
  }
}

interface ErrorBody {
  message?: string;
  field?: string;
  issues?: FieldIssue[];
}

export interface ApiResponse<T> {
  status: number;
  body: T;
}

function apiError(method: string, path: string, status: number, text: string): ApiError {
  let issues: FieldIssue[] = [];
  let detail = text;
  try {
    const parsed = JSON.parse(text) as ErrorBody;
    if (parsed.issues && parsed.issues.length > 0) issues = parsed.issues;
    else if (parsed.field !== undefined && parsed.message !== undefined) {
      issues = [{ field: parsed.field, message: parsed.message }];
    }
    detail = issues.length > 0 ? issues.map((i) => `${i.field}: ${i.message}`).join('\n  ') : (parsed.message ?? text);
  } catch {
    // Not JSON: show the body as it came.
  }
  return new ApiError(`${method} ${path} → ${status}: ${detail}`, status, issues);
}

export class ApiClient {
  private readonly server: string;
  private readonly token: string | undefined;

  constructor(server: string, token?: string) {
    this.server = server.replace(/\/$/, '');
    this.token = token;
  }

  async get<T>(path: string): Promise<T> {
    return (await this.request<T>('GET', path)).body;
  }

  async post<T>(path: string, body: unknown): Promise<T> {
    return (await this.request<T>('POST', path, body)).body;
  }

  async put<T>(path: string, body: unknown): Promise<T> {
    return (await this.request<T>('PUT', path, body)).body;
  }

  async delete(path: string): Promise<void> {
    await this.request('DELETE', path);
  }

  /** The status as well as the body, for callers that tell "created" from "already there" (201 from 200). */
  async request<T>(method: string, path: string, body?: unknown): Promise<ApiResponse<T>> {
    let res: Response;
    try {
      res = await fetch(`${this.server}${path}`, {
        method,
        headers: {
          ...(body !== undefined && { 'content-type': 'application/json' }),
          ...this.auth(),
        },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
    } catch (err) {
      throw this.unreachable(err);
    }
    const text = await res.text();
    if (!res.ok) throw apiError(method, path, res.status, text);
    return { status: res.status, body: (text === '' ? undefined : JSON.parse(text)) as T };
  }

  /**
   * Streams a file as the raw request body with an exact Content-Length (the API compares it with the declared size),
   * so an image of many gigabytes never sits in memory.
   */
  async upload<T>(path: string, file: string, size: number): Promise<ApiResponse<T>> {
    const url = new URL(`${this.server}${path}`);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    const req = send(url, {
      method: 'POST',
      // No keep-alive: a pooled socket would hold icnctl open until the server's idle timeout.
      agent: false,
      headers: { 'content-type': 'application/octet-stream', 'content-length': String(size), ...this.auth() },
    });
    const answered = new Promise<IncomingMessage>((resolve, reject) => {
      req.once('response', resolve);
      req.once('error', reject);
    });
    let res: IncomingMessage;
    try {
      // The API may answer (and close) before the whole body is sent, e.g. on a size it refuses: its answer wins.
      void pipeline(createReadStream(file), req).catch(() => undefined);
      res = await answered;
    } catch (err) {
      throw this.unreachable(err);
    }
    const chunks: Buffer[] = [];
    for await (const chunk of res) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw apiError('POST', url.pathname, status, text);
    return { status, body: JSON.parse(text) as T };
  }

  private auth(): Record<string, string> {
    return this.token ? { authorization: `Bearer ${this.token}` } : {};
  }

  private unreachable(err: unknown): ApiError {
    return new ApiError(`cannot reach the API at ${this.server}: ${err instanceof Error ? err.message : String(err)}`);
  }
}
