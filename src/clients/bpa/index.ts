/**
 * The BPA's typed client, used by the global controller's BPM: artifact uploads that resume where the BPA stands,
 * install jobs (started idempotently by id, polled or streamed), kubeadm clusters (bring-up, membership, upgrade,
 * reset) and their kubeconfig, SSH keys.
 * Failures are PeerError('bpa'): retryable when the BPA cannot be reached, does not answer in time or answers 5xx,
 * not for refusals.
 */
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { Readable } from 'node:stream';
import { z } from 'zod';
import type { ArtifactSpec } from '../../domain/artifact.ts';
import {
  BpaArtifact,
  type BpaSecret,
  type ClusterSpec,
  ClusterStatus,
  type ClusterUpgrade,
  InstalledPackage,
  InstallJob,
  type InstallJobSpec,
  JobEvent,
  UploadStatus,
} from '../../domain/bpa.ts';
import { requestDeadline } from '../deadline.ts';
import { PeerError } from '../errors.ts';

export interface BpaClientOptions {
  /** The BPA's base URL, e.g. http://10.0.0.2:8091. */
  url: string;
  /** A bearer token; never logged nor put in errors. */
  token: string;
  fetch?: typeof globalThis.fetch;
  /** Per request, except uploads and event streams. */
  timeoutMs?: number;
  /** Bytes per upload request: a broken request loses at most what it had not yet delivered. */
  chunkBytes?: number;
}

const FailureBody = z.object({ error: z.string(), message: z.string(), offset: z.number().optional() });

/** Above this size an upload asks where it stands first: a resend from 0 would cost more than the question. */
const askFirstAboveBytes = 2 ** 20;

export class BpaClient {
  readonly url: string;
  readonly #token: string;
  readonly #fetch: typeof globalThis.fetch;
  readonly #timeoutMs: number;
  readonly #chunkBytes: number;

  constructor(opts: BpaClientOptions) {
    this.url = opts.url.replace(/\/+$/, '');
    this.#token = opts.token;
    this.#fetch = opts.fetch ?? globalThis.fetch;
    this.#timeoutMs = opts.timeoutMs ?? 30_000;
    this.#chunkBytes = opts.chunkBytes ?? 64 * 2 ** 20;
  }

  async listArtifacts(): Promise<BpaArtifact[]> {
    const body = await this.#json('GET', '/v1/artifacts');
    return z.object({ items: z.array(BpaArtifact) }).parse(body).items;
  }

  async getArtifact(sha256: string): Promise<BpaArtifact | undefined> {
    const body = await this.#json('GET', `/v1/artifacts/${sha256}`, undefined, [404]);
    return body === undefined ? undefined : BpaArtifact.parse(body);
  }

  async deleteArtifact(sha256: string): Promise<boolean> {
    return (await this.#json('DELETE', `/v1/artifacts/${sha256}`, undefined, [404])) !== undefined;
  }

  async uploadStatus(sha256: string): Promise<UploadStatus | undefined> {
    const body = await this.#json('GET', `/v1/uploads/${sha256}`, undefined, [404]);
    return body === undefined ? undefined : UploadStatus.parse(body);
  }

  /**
   * Uploads `source` as `spec`, from wherever the BPA already stands (a previous upload cut off resumes there):
   * a file's path, or the artifact's bytes when the caller holds them. `onProgress` gets the offset after each
   * chunk, e.g. for an activity heartbeat.
   */
  async uploadArtifact(
    spec: ArtifactSpec,
    source: string | Uint8Array,
    opts: { onProgress?: (offset: number) => void } = {},
  ): Promise<UploadStatus> {
    const size = typeof source === 'string' ? (await stat(source)).size : source.byteLength;
    if (size !== spec.size) {
      const what = typeof source === 'string' ? source : `the content of ${spec.sha256}`;
      throw new PeerError('bpa', `${what} has ${size} bytes, not the ${spec.size} declared`, {
        retryable: false,
        reason: 'LocalFileError',
      });
    }
    // Asking where an upload stands costs a round trip per artifact and site. An artifact of one small chunk is sent
    // whole straight away: an upload an earlier attempt left half-way answers 409 with its offset, and the rest follows.
    let offset =
      size <= Math.min(this.#chunkBytes, askFirstAboveBytes)
        ? 0
        : ((await this.uploadStatus(spec.sha256))?.offset ?? 0);
    const query = new URLSearchParams({
      type: spec.type,
      name: spec.name,
      version: spec.version,
      size: String(spec.size),
      ...(Object.keys(spec.metadata).length > 0 && { metadata: JSON.stringify(spec.metadata) }),
    });
    for (;;) {
      if (offset === size && size > 0) return { sha256: spec.sha256, size, offset, complete: true };
      const end = Math.min(offset + this.#chunkBytes, size) - 1;
      const headers: Record<string, string> = { 'content-type': 'application/octet-stream' };
      if (size > 0) headers['content-range'] = `bytes ${offset}-${end}/${size}`;
      const body =
        typeof source !== 'string'
          ? source.subarray(offset, end + 1)
          : size === 0
            ? new Uint8Array(0)
            : (Readable.toWeb(createReadStream(source, { start: offset, end })) as ReadableStream);
      // Timed by the socket alone: a large chunk on a slow link takes as long as it takes.
      const res = await this.#request(
        'PUT',
        `/v1/uploads/${spec.sha256}?${query.toString()}`,
        { headers, body, timeout: false },
        async (answer) => answer,
      );
      if (res.status === 409) {
        const failure = FailureBody.safeParse(await res.json().catch(() => undefined));
        if (failure.success && failure.data.offset !== undefined) {
          offset = failure.data.offset;
          continue;
        }
      }
      const status = UploadStatus.parse(await this.#expect(res, 'PUT', '/v1/uploads'));
      opts.onProgress?.(status.offset);
      if (status.complete) return status;
      offset = status.offset;
    }
  }

  async startJob(spec: InstallJobSpec): Promise<InstallJob> {
    return InstallJob.parse(await this.#json('POST', '/v1/jobs', spec));
  }

  async getJob(id: string): Promise<InstallJob | undefined> {
    const body = await this.#json('GET', `/v1/jobs/${encodeURIComponent(id)}`, undefined, [404]);
    return body === undefined ? undefined : InstallJob.parse(body);
  }

  async listJobs(): Promise<InstallJob[]> {
    return z.object({ items: z.array(InstallJob) }).parse(await this.#json('GET', '/v1/jobs')).items;
  }

  /** The job's events as they happen, ending with `done` (or when the BPA goes away: poll getJob then). */
  async *events(id: string, signal?: AbortSignal): AsyncGenerator<JobEvent> {
    const res = await this.#request(
      'GET',
      `/v1/jobs/${encodeURIComponent(id)}/events`,
      { timeout: false, ...(signal && { signal }) },
      async (answer) => answer,
    );
    if (!res.ok || !res.body) {
      await this.#expect(res, 'GET', '/v1/jobs/events');
      return;
    }
    const decoder = new TextDecoder();
    let pending = '';
    for await (const chunk of res.body) {
      pending += decoder.decode(chunk as Uint8Array, { stream: true });
      let newline = pending.indexOf('\n');
      while (newline >= 0) {
        const line = pending.slice(0, newline);
        pending = pending.slice(newline + 1);
        if (line.trim() !== '') yield JobEvent.parse(JSON.parse(line));
        newline = pending.indexOf('\n');
      }
    }
  }

  async installed(host?: string): Promise<InstalledPackage[]> {
    const query = host === undefined ? '' : `?host=${encodeURIComponent(host)}`;
    return z.object({ items: z.array(InstalledPackage) }).parse(await this.#json('GET', `/v1/installed${query}`)).items;
  }

  /**
   * Brings the cluster up, or reconciles an existing one to the spec's hosts (added ones join, removed ones are
   * reset; the others are left alone). Wait for `jobId` with getJob (or events) and read the outcome with getCluster.
   * The same spec again, or one whose hosts the cluster has already, changes nothing and returns the status as it
   * stands. PeerError `Conflict` (not retryable) while another job runs on the cluster, or when the spec changes what
   * only a new cluster or an upgrade can (endpoint, CIDRs, version, a host's role).
   */
  async startCluster(spec: ClusterSpec): Promise<ClusterStatus> {
    return ClusterStatus.parse(await this.#json('POST', '/v1/clusters', spec));
  }

  /**
   * Upgrades the cluster to `kubernetesVersion` (the packages on every host first); wait for `jobId` as for
   * startCluster. A cluster at that version already, or being upgraded to it, returns its status as it stands, whose
   * `jobId` is then its latest job. PeerError `NotFound` for no such cluster, `Conflict` while another job runs on it
   * or for a downgrade.
   */
  async upgradeCluster(name: string, upgrade: ClusterUpgrade): Promise<ClusterStatus> {
    return ClusterStatus.parse(await this.#json('POST', `/v1/clusters/${encodeURIComponent(name)}/upgrade`, upgrade));
  }

  /**
   * Starts resetting the cluster (`kubeadm reset -f` on every host, then the cluster and its kubeconfig forgotten)
   * and returns at once: true when the cluster existed (a reset under way already counts), false when it is gone
   * (a reset done, or never brought up). The reset is done when getCluster(name) returns undefined; until then
   * getCluster gives its `jobId` (for getJob and events), and state `failed` with `error` if the reset failed.
   * PeerError `Conflict` while another job runs on the cluster.
   */
  async resetCluster(name: string): Promise<boolean> {
    const path = `/v1/clusters/${encodeURIComponent(name)}`;
    return this.#request('DELETE', path, {}, async (res) => {
      if (res.status === 404) {
        // The BPA's own answer, not a BPA without this route: that one must not pass for a cluster already gone.
        const failure = FailureBody.safeParse(await res.json().catch(() => undefined));
        if (failure.success && failure.data.error === 'NotFound') return false;
        throw new PeerError(
          'bpa',
          `bpa DELETE ${this.url}${path}: 404 without the BPA's NotFound: no cluster reset here`,
          {
            retryable: false,
            reason: 'HTTP404',
          },
        );
      }
      ClusterStatus.parse(await this.#expect(res, 'DELETE', path));
      return true;
    });
  }

  async getCluster(name: string): Promise<ClusterStatus | undefined> {
    const body = await this.#json('GET', `/v1/clusters/${encodeURIComponent(name)}`, undefined, [404]);
    return body === undefined ? undefined : ClusterStatus.parse(body);
  }

  /** The admin kubeconfig once the bring-up has fetched it; undefined before. */
  async kubeconfig(cluster: string): Promise<string | undefined> {
    const path = `/v1/clusters/${encodeURIComponent(cluster)}/kubeconfig`;
    return this.#request('GET', path, {}, async (res) => {
      if (res.status === 404) {
        await res.body?.cancel();
        return undefined;
      }
      if (!res.ok) await this.#expect(res, 'GET', path);
      return res.text();
    });
  }

  async putSecret(name: string, secret: BpaSecret): Promise<void> {
    await this.#json('PUT', `/v1/secrets/${name}`, secret);
  }

  /**
   * One exchange with the BPA: the request and `read` of its answer, within the client's timeout unless `timeout` is
   * false (uploads, event streams).
   */
  async #request<T>(
    method: string,
    path: string,
    init: { headers?: Record<string, string>; body?: RequestInit['body']; timeout?: boolean; signal?: AbortSignal },
    read: (res: Response) => Promise<T>,
  ): Promise<T> {
    const where = () => `bpa ${method} ${this.url}${path.split('?')[0] ?? ''}`;
    const deadline = init.timeout === false ? undefined : requestDeadline(this.#timeoutMs);
    const signals = [init.signal, deadline?.signal].filter((s) => s !== undefined);
    const signal = signals.length > 1 ? AbortSignal.any(signals) : signals[0];
    const timedOut = () =>
      new PeerError('bpa', `${where()}: no answer within ${this.#timeoutMs} ms`, {
        retryable: true,
        reason: 'Timeout',
      });
    try {
      let res: Response;
      try {
        res = await this.#fetch(`${this.url}${path}`, {
          method,
          headers: { authorization: `Bearer ${this.#token}`, ...init.headers },
          ...(init.body !== undefined && { body: init.body, duplex: 'half' }),
          ...(signal && { signal }),
        });
      } catch (err) {
        if (deadline?.expired() === true) throw timedOut();
        const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
        throw new PeerError('bpa', `${where()}: ${(err as Error).message}${cause}`, {
          retryable: true,
          reason: 'Unreachable',
          cause: err,
        });
      }
      try {
        return await read(res);
      } catch (err) {
        // The answer began but did not end in time: as retryable as no answer at all.
        if (deadline?.expired() === true && !(err instanceof PeerError)) throw timedOut();
        throw err;
      }
    } finally {
      deadline?.clear();
    }
  }

  async #expect(res: Response, method: string, path: string): Promise<unknown> {
    const text = await res.text();
    const body: unknown = text === '' ? undefined : JSON.parse(text);
    if (res.ok) return body;
    const failure = FailureBody.safeParse(body);
    const reason = failure.success ? failure.data.error : `HTTP${res.status}`;
    const detail = failure.success ? failure.data.message : text.slice(0, 500);
    throw new PeerError('bpa', `bpa ${method} ${this.url}${path.split('?')[0] ?? ''}: ${res.status} ${detail}`, {
      retryable: res.status >= 500 || res.status === 429,
      reason,
    });
  }

  async #json(method: string, path: string, body?: unknown, absent: number[] = []): Promise<unknown> {
    const init =
      body === undefined ? {} : { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) };
    return this.#request(method, path, init, async (res) => {
      if (absent.includes(res.status)) {
        await res.body?.cancel();
        return undefined;
      }
      if (res.status === 204) {
        await res.body?.cancel();
        return null;
      }
      return this.#expect(res, method, path);
    });
  }
}
