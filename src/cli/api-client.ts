/** The trigger API as icnctl sees it: JSON over HTTP with a bearer token, errors carrying the API's own message. */
export class ApiError extends Error {
  override name = 'ApiError';
  readonly status: number | undefined;
  constructor(message: string, status?: number) {
    super(message);
    this.status = status;
  }
}

interface ErrorBody {
  message?: string;
  issues?: { field: string; message: string }[];
}

export class ApiClient {
  private readonly server: string;
  private readonly token: string | undefined;

  constructor(server: string, token?: string) {
    this.server = server.replace(/\/$/, '');
    this.token = token;
  }

  get<T>(path: string): Promise<T> {
    return this.request<T>('GET', path);
  }

  post<T>(path: string, body: unknown): Promise<T> {
    return this.request<T>('POST', path, body);
  }

  private async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetch(`${this.server}${path}`, {
        method,
        headers: {
          ...(body !== undefined && { 'content-type': 'application/json' }),
          ...(this.token && { authorization: `Bearer ${this.token}` }),
        },
        ...(body !== undefined && { body: JSON.stringify(body) }),
      });
    } catch (err) {
      throw new ApiError(`cannot reach the API at ${this.server}: ${err instanceof Error ? err.message : String(err)}`);
    }
    const text = await res.text();
    if (!res.ok) {
      let detail = text;
      try {
        const parsed = JSON.parse(text) as ErrorBody;
        detail = parsed.issues?.map((i) => `${i.field}: ${i.message}`).join('\n  ') ?? parsed.message ?? text;
      } catch {
        // Not JSON: show the body as it came.
      }
      throw new ApiError(`${method} ${path} → ${res.status}: ${detail}`, res.status);
    }
    return JSON.parse(text) as T;
  }
}
