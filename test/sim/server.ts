/**
 * One server answering, for any number of simulated sites at once, the calls the real clients make during a site
 * patch: each site's Ironic (`/sites/<site>/ironic`, node reads and power changes), BPA (`/sites/<site>/bpa`:
 * artifacts and resumable uploads, SSH key secrets, install and rollback jobs, installed records), application
 * cluster (`/sites/<site>/kube`: discovery, Nodes get/list/update/watch, Pods list, evictions) and bootstrap cluster
 * (`/sites/<site>/bootstrap`: the Secret holding the application cluster's kubeconfig, as Cluster-API writes it).
 * Ironic and BPA over HTTP, the Kubernetes APIs over HTTPS (the client speaks nothing else) with a self-signed
 * certificate that the kubeconfigs carry. Each site has its own bearer tokens, checked as the real peers check theirs.
 *
 * Test-only: it stands in for physical sites, which cannot run here. Routes it does not know answer 404 and are
 * counted in `unhandled`, so that a client call the simulation misses shows up in its stats instead of passing.
 *
 *   node test/sim/server.ts        prints {"httpUrl","httpsUrl","ca"} on one line, serves until SIGTERM;
 *                                  POST /control/reset {layout, behaviour} before a scenario, GET /control/stats.
 */
import { createServer as createHttpServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { InstallJobSpec } from '../../src/domain/bpa.ts';
import {
  type SimBehaviour,
  type SimJob,
  type SimJobTiming,
  type SimLayout,
  SimSites,
  type SiteState,
} from './sites.ts';
import { selfSignedCertificate } from './tls.ts';

export interface SimServerInfo {
  /** Ironic and BPA: http://127.0.0.1:<port>. */
  httpUrl: string;
  /** The Kubernetes APIs: https://127.0.0.1:<port>. */
  httpsUrl: string;
  /** PEM of the certificate the HTTPS listener serves (its own CA). */
  ca: string;
}

export interface SimStats {
  requests: Record<string, number>;
  unhandled: Record<string, number>;
  sites: number;
  openWatches: number;
  rssMB: number;
}

export interface SimServer extends SimServerInfo {
  sim: SimSites;
  stats(): SimStats;
  close(): Promise<void>;
}

/** Each site's credentials: derived from its name, so that the inventory and the simulation agree without a table. */
export const simTokens = {
  bpa: (site: string) => `sim-bpa-token-${site}`,
  kube: (site: string) => `sim-kube-token-${site}`,
  bootstrap: (site: string) => `sim-bootstrap-token-${site}`,
};

/** Where Cluster-API keeps the application cluster's kubeconfig on a site's bootstrap cluster. */
export const clusterKubeconfigSecret = (site: string) => ({ namespace: `site-${site}`, name: `${site}-kubeconfig` });

export function simEndpoints(info: Pick<SimServerInfo, 'httpUrl'>, site: string) {
  return { ironicUrl: `${info.httpUrl}/sites/${site}/ironic`, bpaUrl: `${info.httpUrl}/sites/${site}/bpa` };
}

/** A kubeconfig (JSON is YAML) for a site's application (`kube`) or bootstrap cluster. */
export function simKubeconfig(info: Pick<SimServerInfo, 'httpsUrl' | 'ca'>, site: string, which: 'kube' | 'bootstrap') {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name: `${site}-${which}`,
        cluster: {
          server: `${info.httpsUrl}/sites/${site}/${which}`,
          'certificate-authority-data': Buffer.from(info.ca).toString('base64'),
        },
      },
    ],
    users: [{ name: `${site}-${which}-admin`, user: { token: simTokens[which](site) } }],
    contexts: [{ name: `${site}-${which}`, context: { cluster: `${site}-${which}`, user: `${site}-${which}-admin` } }],
    'current-context': `${site}-${which}`,
  });
}

/** The answer is being streamed (a watch): nothing more to send. */
const streaming = Symbol('streaming');

class Reply {
  readonly status: number;
  readonly body: unknown;

  constructor(status: number, body?: unknown) {
    this.status = status;
    this.body = body;
  }
}

const kubeStatus = (code: number, reason: string, message: string) =>
  new Reply(code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
const bpaFailure = (code: number, error: string, message: string) => new Reply(code, { error, message });
const ironicFailure = (code: number, message: string) =>
  new Reply(code, { error_message: JSON.stringify({ faultstring: message, faultcode: 'Client', debuginfo: null }) });

async function readBody(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function drain(req: IncomingMessage): Promise<number> {
  let bytes = 0;
  for await (const chunk of req) bytes += (chunk as Buffer).length;
  return bytes;
}

function send(res: ServerResponse, reply: Reply): void {
  if (reply.body === undefined) {
    res.writeHead(reply.status, { 'content-length': 0 });
    res.end();
    return;
  }
  const text = JSON.stringify(reply.body);
  res.writeHead(reply.status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

function selector(query: URLSearchParams, field: string): string | undefined {
  const value = query.get('fieldSelector');
  if (value === null) return undefined;
  const prefix = `${field}=`;
  return value.startsWith(prefix) ? value.slice(prefix.length) : undefined;
}

export class SimHandler {
  readonly sim: SimSites;
  readonly #requests = new Map<string, number>();
  readonly #unhandled = new Map<string, number>();
  #openWatches = 0;
  #info: SimServerInfo | undefined;

  constructor(sim: SimSites) {
    this.sim = sim;
  }

  set info(info: SimServerInfo) {
    this.#info = info;
  }

  stats(): SimStats {
    return {
      requests: Object.fromEntries(this.#requests),
      unhandled: Object.fromEntries(this.#unhandled),
      sites: this.sim.sites.size,
      openWatches: this.#openWatches,
      rssMB: Math.round(process.memoryUsage.rss() / 2 ** 20),
    };
  }

  resetStats(): void {
    this.#requests.clear();
    this.#unhandled.clear();
  }

  #count(key: string): void {
    this.#requests.set(key, (this.#requests.get(key) ?? 0) + 1);
  }

  /** A new client connection: on HTTPS a full TLS handshake, the costliest thing a client does besides its calls. */
  connected(secure: boolean): void {
    this.#count(secure ? 'connections https' : 'connections http');
  }

  async handle(req: IncomingMessage, res: ServerResponse, secure: boolean): Promise<void> {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q < 0 ? url : url.slice(0, q);
    const query = new URLSearchParams(q < 0 ? '' : url.slice(q + 1));
    const parts = path.split('/').map((p) => decodeURIComponent(p));
    const method = req.method ?? 'GET';
    let reply: Reply | undefined;
    try {
      if (parts[1] === 'sites' && parts[2] && parts[3]) {
        const site = parts[2];
        const peer = parts[3];
        const rest = parts.slice(4);
        if (!secure && peer === 'bpa') {
          const answer = await this.#bpa(req, res, site, method, rest, query);
          if (answer === streaming) return;
          reply = answer;
        } else if (!secure && peer === 'ironic') reply = await this.#ironic(req, site, method, rest);
        else if (secure && (peer === 'kube' || peer === 'bootstrap')) {
          const answer = await this.#kube(req, res, site, peer, method, rest, query);
          if (answer === streaming) return;
          reply = answer;
        }
      } else if (!secure && parts[1] === 'control') {
        reply = await this.#control(req, method, parts.slice(2));
      }
    } catch (err) {
      reply = new Reply(500, { error: 'InternalError', message: err instanceof Error ? err.message : String(err) });
    }
    if (reply === undefined) {
      const key = `${method} ${path.replace(/\/sites\/[^/]+\//, '/sites/*/')}`;
      this.#unhandled.set(key, (this.#unhandled.get(key) ?? 0) + 1);
      await drain(req);
      reply = new Reply(404, { error: 'NotFound', message: `the simulated site does not answer ${method} ${path}` });
    }
    send(res, reply);
  }

  async #control(req: IncomingMessage, method: string, rest: string[]): Promise<Reply | undefined> {
    if (method === 'POST' && rest[0] === 'reset') {
      const body = JSON.parse((await readBody(req)).toString()) as {
        layout: SimLayout;
        behaviour: Partial<SimBehaviour>;
      };
      this.sim.reset(body.layout, body.behaviour);
      this.resetStats();
      return new Reply(200, { ok: true });
    }
    if (method === 'GET' && rest[0] === 'stats') return new Reply(200, this.stats());
    if (method === 'GET' && rest[0] === 'sites' && rest[1] && rest[2] === 'jobs') {
      const jobs = [...(this.sim.sites.get(rest[1])?.jobs.values() ?? [])];
      return new Reply(
        200,
        jobs.map(({ id, createdAt, endsAt, seenEndedAt }): SimJobTiming => ({
          id,
          createdAt,
          endsAt,
          ...(seenEndedAt !== undefined && { seenEndedAt }),
        })),
      );
    }
    if (method === 'GET' && rest[0] === 'sites' && rest[1]) return new Reply(200, this.siteView(rest[1]));
    return undefined;
  }

  /** What a site's hosts run and how their Nodes stand, with its event log when recorded. */
  siteView(name: string) {
    const site = this.sim.site(name);
    return {
      hosts: this.sim.layout.hosts.map((layout, i) => {
        const host = site.hosts[i];
        return {
          name: layout.name,
          node: this.sim.nodeName(name, layout.name),
          unschedulable: host?.unschedulable ?? false,
          packages: Object.fromEntries([...(host?.packages ?? [])].map(([p, r]) => [p, r.version])),
        };
      }),
      artifacts: [...site.artifacts.values()].filter((a) => a.createdAt !== undefined).map((a) => a.spec.sha256),
      events: site.events ?? [],
    };
  }

  // --- BPA --------------------------------------------------------------------------------------------------------

  async #bpa(
    req: IncomingMessage,
    res: ServerResponse,
    siteName: string,
    method: string,
    rest: string[],
    query: URLSearchParams,
  ): Promise<Reply | typeof streaming | undefined> {
    if (req.headers.authorization !== `Bearer ${simTokens.bpa(siteName)}`) {
      await drain(req);
      this.#count('bpa 401');
      return bpaFailure(401, 'Unauthorized', 'a valid bearer token is required');
    }
    const site = this.sim.site(siteName);
    const [v1, kind, id] = rest;
    if (v1 !== 'v1') return undefined;
    if (kind === 'artifacts' && id === undefined && method === 'GET') {
      this.#count('bpa GET artifacts');
      const items = [...site.artifacts.values()]
        .filter((a) => a.createdAt !== undefined)
        .map((a) => ({ ...a.spec, createdAt: a.createdAt }));
      return new Reply(200, { items });
    }
    if (kind === 'uploads' && id !== undefined) {
      const artifact = site.artifacts.get(id);
      if (method === 'GET') {
        this.#count('bpa GET upload');
        if (!artifact) return bpaFailure(404, 'NotFound', `no upload of ${id}`);
        return new Reply(200, uploadStatus(artifact));
      }
      if (method === 'PUT') {
        this.#count('bpa PUT upload');
        const size = Number(query.get('size'));
        const spec = {
          type: query.get('type') ?? '',
          name: query.get('name') ?? '',
          version: query.get('version') ?? '',
          sha256: id,
          size,
          metadata: JSON.parse(query.get('metadata') ?? '{}') as Record<string, string>,
        };
        const range = /^bytes (\d+)-(\d+)\/(\d+)$/.exec(req.headers['content-range'] ?? `bytes 0-${size - 1}/${size}`);
        const record = artifact ?? { spec, offset: 0 };
        if (size > 0 && (!range || Number(range[3]) !== size)) {
          await drain(req);
          return bpaFailure(400, 'Invalid', 'Content-Range must be "bytes a-b/size"');
        }
        if (size > 0 && Number(range?.[1]) !== record.offset) {
          await drain(req);
          return new Reply(409, {
            error: 'OffsetMismatch',
            message: 'the upload stands elsewhere',
            offset: record.offset,
          });
        }
        // The bytes are counted, not kept: the simulated BPA has no disk, and the BPA benchmark measures transfers.
        record.offset += await drain(req);
        if (record.offset >= size && record.createdAt === undefined) record.createdAt = new Date().toISOString();
        site.artifacts.set(id, record);
        return new Reply(200, uploadStatus(record));
      }
    }
    if (kind === 'secrets' && id !== undefined && method === 'PUT') {
      this.#count('bpa PUT secret');
      const body = JSON.parse((await readBody(req)).toString()) as {
        type?: string;
        stringData?: { privateKey?: string };
      };
      if (body.type !== 'ssh-key' || !body.stringData?.privateKey) {
        return bpaFailure(400, 'Invalid', 'an ssh-key secret with stringData.privateKey is required');
      }
      site.secrets.add(id);
      return new Reply(204);
    }
    if (kind === 'jobs') {
      if (id === undefined && method === 'POST') {
        this.#count('bpa POST job');
        const parsed = InstallJobSpec.safeParse(JSON.parse((await readBody(req)).toString()));
        if (!parsed.success) return bpaFailure(400, 'Invalid', parsed.error.message);
        const spec = parsed.data;
        const jobId = spec.id ?? `job-${this.sim.nextRv()}`;
        const existing = site.jobs.get(jobId);
        if (existing) return new Reply(200, this.sim.jobView(existing));
        const missing = [
          ...spec.packages.filter((p) => !site.artifacts.get(p.artifact.sha256)?.createdAt).map((p) => p.name),
          ...spec.hosts.filter((h) => !site.secrets.has(h.keyRef.name)).map((h) => `key ${h.keyRef.name}`),
        ];
        if (missing.length > 0) return bpaFailure(409, 'Missing', `not on this BPA: ${missing.join(', ')}`);
        const job = this.sim.startJob(siteName, {
          id: jobId,
          action: spec.action,
          hosts: spec.hosts.map((h) => h.name),
          packages: spec.packages.map((p) => ({ name: p.name, version: p.version, sha256: p.artifact.sha256 })),
        });
        return new Reply(201, this.sim.jobView(job));
      }
      if (id === undefined && method === 'GET') {
        this.#count('bpa GET jobs');
        return new Reply(200, { items: [...site.jobs.values()].map((j) => this.sim.jobView(j, false)) });
      }
      if (id !== undefined && method === 'GET' && rest.length === 4 && rest[3] === 'events') {
        this.#count('bpa GET job events');
        const job = site.jobs.get(id);
        if (!job) return bpaFailure(404, 'NotFound', `job ${id} not found`);
        this.#jobEvents(req, res, site, job);
        return streaming;
      }
      if (id !== undefined && method === 'GET' && rest.length === 3) {
        this.#count('bpa GET job');
        const job = site.jobs.get(id);
        if (job?.results && job.seenEndedAt === undefined) job.seenEndedAt = Date.now();
        return job ? new Reply(200, this.sim.jobView(job)) : bpaFailure(404, 'NotFound', `job ${id} not found`);
      }
    }
    if (kind === 'installed' && method === 'GET') {
      this.#count('bpa GET installed');
      const host = query.get('host');
      const items = this.sim.layout.hosts.flatMap((layout, i) => {
        if (host !== null && layout.name !== host) return [];
        return [...(site.hosts[i]?.packages ?? [])].map(([name, r]) => ({
          host: layout.name,
          name,
          version: r.version,
          sha256: r.sha256,
          at: r.at,
        }));
      });
      return new Reply(200, { items });
    }
    return undefined;
  }

  /** As the BPA streams a job: every host as it stands, then `done` when the job ends (at its simulated end). */
  #jobEvents(req: IncomingMessage, res: ServerResponse, site: SiteState, job: SimJob): void {
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    const write = (event: object) => res.write(`${JSON.stringify(event)}\n`);
    const view = () => this.sim.jobView(job);
    for (const progress of view().hosts) write({ type: 'host', jobId: job.id, progress });
    let timer: NodeJS.Timeout | undefined;
    const finish = () => {
      this.sim.settle(site);
      if (!job.results) {
        // A timer may fire a hair before the job's end.
        timer = setTimeout(finish, Math.max(job.endsAt - Date.now(), 1));
        return;
      }
      if (job.seenEndedAt === undefined) job.seenEndedAt = Date.now();
      const ended = view();
      write({ type: 'done', jobId: job.id, state: ended.state, summary: ended.summary, job: ended });
      res.end();
    };
    if (job.results) {
      finish();
      return;
    }
    timer = setTimeout(finish, Math.max(job.endsAt - Date.now(), 0));
    req.on('close', () => {
      clearTimeout(timer);
    });
  }

  // --- Ironic -----------------------------------------------------------------------------------------------------

  async #ironic(req: IncomingMessage, siteName: string, method: string, rest: string[]): Promise<Reply | undefined> {
    const [v1, nodes, ident, states, which] = rest;
    if (v1 !== 'v1' || nodes !== 'nodes' || ident === undefined) return undefined;
    // metal3 enrols `<namespace>~<BareMetalHost>`; the BPM without Cluster-API `<site>-<host>`.
    const tilde = ident.indexOf('~');
    const hostName =
      tilde >= 0
        ? ident.slice(0, tilde) === `site-${siteName}`
          ? ident.slice(tilde + 1)
          : ''
        : ident.startsWith(`${siteName}-`)
          ? ident.slice(siteName.length + 1)
          : '';
    const index = this.sim.hostIndex(hostName);
    if (index < 0) {
      await drain(req);
      return ironicFailure(404, `Node ${ident} could not be found.`);
    }
    const site = this.sim.site(siteName);
    const host = site.hosts[index];
    if (!host) return undefined;
    if (method === 'GET' && states === undefined) {
      this.#count('ironic GET node');
      const on = this.sim.poweredOn(host);
      return new Reply(200, {
        uuid: `${siteName}-${hostName}-0000`,
        name: ident,
        driver: 'redfish',
        provision_state: 'active',
        target_provision_state: null,
        power_state: on ? 'power on' : 'power off',
        target_power_state: on ? null : 'power on',
        last_error: null,
        maintenance: false,
        maintenance_reason: null,
        reservation: null,
        driver_info: {},
        instance_info: {},
        properties: {},
      });
    }
    if (method === 'PUT' && states === 'states' && which === 'power') {
      this.#count('ironic PUT power');
      const body = JSON.parse((await readBody(req)).toString()) as { target?: string };
      if (body.target === 'rebooting') this.sim.reboot(siteName, index);
      else if (body.target !== 'power on' && body.target !== 'power off') {
        return ironicFailure(400, `invalid power target ${String(body.target)}`);
      }
      return new Reply(202);
    }
    return undefined;
  }

  // --- Kubernetes -------------------------------------------------------------------------------------------------

  async #kube(
    req: IncomingMessage,
    res: ServerResponse,
    siteName: string,
    which: 'kube' | 'bootstrap',
    method: string,
    rest: string[],
    query: URLSearchParams,
  ): Promise<Reply | typeof streaming | undefined> {
    if (req.headers.authorization !== `Bearer ${simTokens[which](siteName)}`) {
      await drain(req);
      this.#count(`${which} 401`);
      return kubeStatus(401, 'Unauthorized', 'Unauthorized');
    }
    const [api, v1, a, b, c, d, e] = rest;
    if (api !== 'api' || v1 !== 'v1') return undefined;
    if (a === undefined && method === 'GET') {
      this.#count(`${which} GET discovery`);
      return new Reply(200, {
        kind: 'APIResourceList',
        groupVersion: 'v1',
        resources: [
          {
            name: 'nodes',
            singularName: 'node',
            namespaced: false,
            kind: 'Node',
            verbs: ['get', 'list', 'update', 'watch'],
          },
          { name: 'pods', singularName: 'pod', namespaced: true, kind: 'Pod', verbs: ['get', 'list', 'delete'] },
          {
            name: 'pods/eviction',
            singularName: '',
            namespaced: true,
            group: 'policy',
            version: 'v1',
            kind: 'Eviction',
            verbs: ['create'],
          },
          { name: 'secrets', singularName: 'secret', namespaced: true, kind: 'Secret', verbs: ['get', 'list'] },
        ],
      });
    }
    if (which === 'bootstrap') {
      if (a === 'namespaces' && c === 'secrets' && d !== undefined && e === undefined && method === 'GET') {
        this.#count('bootstrap GET secret');
        const wanted = clusterKubeconfigSecret(siteName);
        if (b !== wanted.namespace || d !== wanted.name || !this.#info) {
          return kubeStatus(404, 'NotFound', `secrets "${d}" not found`);
        }
        return new Reply(200, {
          apiVersion: 'v1',
          kind: 'Secret',
          metadata: { name: d, namespace: b, resourceVersion: '1' },
          type: 'cluster.x-k8s.io/secret',
          data: { value: Buffer.from(simKubeconfig(this.#info, siteName, 'kube')).toString('base64') },
        });
      }
      return undefined;
    }
    if (a === 'nodes') {
      if (b === undefined && method === 'GET') {
        const name = selector(query, 'metadata.name');
        const indexes =
          name === undefined
            ? this.sim.layout.hosts.map((_, i) => i)
            : [this.sim.nodeHost(siteName, name)].filter((i) => i >= 0);
        if (query.get('watch') === '1' || query.get('watch') === 'true') {
          this.#count('kube WATCH nodes');
          this.#watch(req, res, siteName, indexes, query);
          return streaming;
        }
        this.#count('kube GET nodes');
        const site = this.sim.site(siteName);
        return new Reply(200, {
          kind: 'NodeList',
          apiVersion: 'v1',
          metadata: { resourceVersion: String(this.sim.rv) },
          items: indexes.map((i) => this.#node(siteName, site, i)),
        });
      }
      if (b !== undefined && c === undefined) {
        const index = this.sim.nodeHost(siteName, b);
        if (index < 0) {
          await drain(req);
          return kubeStatus(404, 'NotFound', `nodes "${b}" not found`);
        }
        const site = this.sim.site(siteName);
        if (method === 'GET') {
          this.#count('kube GET node');
          return new Reply(200, this.#node(siteName, site, index));
        }
        if (method === 'PUT') {
          this.#count('kube PUT node');
          const body = JSON.parse((await readBody(req)).toString()) as {
            metadata?: { resourceVersion?: string; annotations?: Record<string, string> };
            spec?: { unschedulable?: boolean };
          };
          const host = site.hosts[index];
          if (!host) return undefined;
          if (body.metadata?.resourceVersion !== String(host.rv)) {
            return kubeStatus(
              409,
              'Conflict',
              `Operation cannot be fulfilled on nodes "${b}": the object has been modified; please apply your changes to the latest version and try again`,
            );
          }
          this.sim.updateNode(siteName, index, body.spec?.unschedulable === true, body.metadata.annotations);
          return new Reply(200, this.#node(siteName, site, index));
        }
      }
      return undefined;
    }
    const podsAll = a === 'pods' && b === undefined;
    const podsIn = a === 'namespaces' && c === 'pods' && d === undefined;
    if ((podsAll || podsIn) && method === 'GET') {
      this.#count('kube GET pods');
      const node = selector(query, 'spec.nodeName');
      const site = this.sim.site(siteName);
      const indexes =
        node === undefined
          ? this.sim.layout.hosts.map((_, i) => i)
          : [this.sim.nodeHost(siteName, node)].filter((i) => i >= 0);
      const items = indexes
        .flatMap((i) => this.#pods(siteName, site, i))
        .filter((p) => podsAll || p.metadata.namespace === b);
      return new Reply(200, {
        kind: 'PodList',
        apiVersion: 'v1',
        metadata: { resourceVersion: String(this.sim.rv) },
        items,
      });
    }
    if (a === 'namespaces' && c === 'pods' && d !== undefined && e === 'eviction' && method === 'POST') {
      this.#count('kube POST eviction');
      await readBody(req);
      const m = /^app-(\d+)-(.+)$/.exec(d);
      const index = m ? this.sim.hostIndex(m[2] ?? '') : -1;
      const site = this.sim.site(siteName);
      const host = site.hosts[index];
      const bit = 1 << Number(m?.[1] ?? 0);
      if (b !== 'workloads' || !host || Number(m?.[1]) >= this.sim.behaviour.podsPerHost || host.evicted & bit) {
        return kubeStatus(404, 'NotFound', `pods "${d}" not found`);
      }
      host.evicted |= bit;
      this.sim.event(site, `evict ${d}`);
      return new Reply(201, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Success', code: 201 });
    }
    return undefined;
  }

  #node(siteName: string, site: ReturnType<SimSites['site']>, index: number) {
    const layout = this.sim.layout.hosts[index];
    const host = site.hosts[index];
    if (!layout || !host) throw new Error(`no host ${index}`);
    const name = this.sim.nodeName(siteName, layout.name);
    const ready = this.sim.ready(host);
    return {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: {
        name,
        uid: `${name}-uid`,
        resourceVersion: String(host.rv),
        creationTimestamp: this.sim.startedAt,
        ...(host.annotations && { annotations: host.annotations }),
        labels: {
          'kubernetes.io/hostname': name,
          ...(layout.role === 'control-plane' && { 'node-role.kubernetes.io/control-plane': '' }),
        },
      },
      spec: {
        providerID: `metal3://site-${siteName}/${layout.name}/${name}`,
        ...(host.unschedulable && { unschedulable: true }),
      },
      status: {
        conditions: [
          {
            type: 'Ready',
            status: ready ? 'True' : 'False',
            reason: ready ? 'KubeletReady' : 'KubeletNotReady',
            lastTransitionTime: new Date(host.rebootAt || Date.parse(this.sim.startedAt)).toISOString(),
          },
        ],
        nodeInfo: { kubeletVersion: `v${this.sim.layout.kubeletVersion}` },
      },
    };
  }

  #pods(siteName: string, site: ReturnType<SimSites['site']>, index: number) {
    const layout = this.sim.layout.hosts[index];
    const host = site.hosts[index];
    if (!layout || !host) return [];
    const nodeName = this.sim.nodeName(siteName, layout.name);
    const pod = (name: string, namespace: string, owner: string) => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace,
        resourceVersion: String(host.rv),
        ownerReferences: [
          { apiVersion: 'apps/v1', kind: owner, name: owner.toLowerCase(), uid: `${owner}-uid`, controller: true },
        ],
      },
      spec: { nodeName },
      status: { phase: 'Running' },
    });
    const pods = [pod(`cni-${layout.name}`, 'kube-system', 'DaemonSet')];
    for (let i = 0; i < this.sim.behaviour.podsPerHost; i++) {
      if (!(host.evicted & (1 << i))) pods.push(pod(`app-${i}-${layout.name}`, 'workloads', 'ReplicaSet'));
    }
    return pods;
  }

  /** A watch on Nodes: every change after the given resourceVersion, one JSON line each, until timeoutSeconds. */
  #watch(req: IncomingMessage, res: ServerResponse, siteName: string, indexes: number[], query: URLSearchParams): void {
    const since = Number(query.get('resourceVersion') ?? 0);
    const seconds = Math.min(Number(query.get('timeoutSeconds') ?? 300), 1800);
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    this.#openWatches++;
    const site = this.sim.site(siteName);
    const emit = (index: number) => {
      res.write(`${JSON.stringify({ type: 'MODIFIED', object: this.#node(siteName, site, index) })}\n`);
    };
    const stops = indexes.map((i) =>
      this.sim.listen(siteName, i, (_, index) => {
        emit(index);
      }),
    );
    for (const i of indexes) if ((site.hosts[i]?.rv ?? 0) > since) emit(i);
    const timer = setTimeout(() => res.end(), seconds * 1000);
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      this.#openWatches--;
      clearTimeout(timer);
      for (const stop of stops) stop();
    };
    res.on('close', close);
    req.on('close', close);
  }
}

function uploadStatus(a: { spec: { sha256: string; size: number }; offset: number; createdAt?: string }) {
  return { sha256: a.spec.sha256, size: a.spec.size, offset: a.offset, complete: a.createdAt !== undefined };
}

async function listen(server: Server): Promise<number> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return (server.address() as AddressInfo).port;
}

/** Both listeners on free loopback ports, in this process. */
export async function startSimServer(layout: SimLayout, behaviour: Partial<SimBehaviour> = {}): Promise<SimServer> {
  const sim = new SimSites(layout, behaviour);
  const handler = new SimHandler(sim);
  const { cert, key } = selfSignedCertificate();
  const onError = (res: ServerResponse) => (err: unknown) => {
    if (!res.headersSent) send(res, new Reply(500, { error: 'InternalError', message: String(err) }));
  };
  const http = createHttpServer((req, res) => {
    handler.handle(req, res, false).catch(onError(res));
  });
  const https = createHttpsServer({ cert, key }, (req, res) => {
    handler.handle(req, res, true).catch(onError(res));
  });
  // Clients keep connections open between a host's calls; a short server timeout would only add handshakes. The
  // Kubernetes APIs close an idle connection after 90 s as kube-apiserver does (its http.Server IdleTimeout), so that
  // a host step shorter than that reuses its site's connection, as against a real cluster.
  http.keepAliveTimeout = 30_000;
  https.keepAliveTimeout = 90_000;
  http.on('connection', () => {
    handler.connected(false);
  });
  https.on('secureConnection', () => {
    handler.connected(true);
  });
  const [httpPort, httpsPort] = await Promise.all([listen(http), listen(https)]);
  const info: SimServerInfo = {
    httpUrl: `http://127.0.0.1:${httpPort}`,
    httpsUrl: `https://127.0.0.1:${httpsPort}`,
    ca: cert,
  };
  handler.info = info;
  return {
    ...info,
    sim,
    stats: () => handler.stats(),
    close: async () => {
      sim.close();
      await Promise.all(
        [http, https].map(
          (server) =>
            new Promise<void>((resolve) => {
              server.close(() => {
                resolve();
              });
              server.closeAllConnections();
            }),
        ),
      );
    },
  };
}

if (import.meta.main) {
  const server = await startSimServer({ hosts: [], installed: [], kubeletVersion: '1.34.2' });
  console.log(JSON.stringify({ httpUrl: server.httpUrl, httpsUrl: server.httpsUrl, ca: server.ca }));
  const stop = () => {
    void server.close().then(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
