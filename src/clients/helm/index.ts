/**
 * The typed Helm client: one instance per target cluster (a kubeconfig), driving the real helm binary. Charts are
 * local files (a packaged .tgz from the artifact store, or a chart folder), never repository references. Values go
 * through a temporary 0600 file that is removed afterwards, never `--set`, so that they appear neither in the process
 * list nor in any error message. Every failure is a PeerError('helm', ...) whose `retryable` and `reason` tell
 * Temporal's retry policy what to do.
 */
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { PeerError } from '../errors.ts';
import { valueStrings } from './errors.ts';
import { runHelm, type HelmRunOptions } from './run.ts';
import {
  historyJsonSchema,
  metadataJsonSchema,
  metadataToReleaseStatus,
  releaseJsonSchema,
  toHistory,
  toReleaseStatus,
  type HistoryEntry,
  type ReleaseStatus,
} from './types.ts';

export { classifyHelmError, scrub, valueStrings, type Classification, type HelmErrorReason } from './errors.ts';
export { helmEnv } from './run.ts';
export type { HistoryEntry, ReleaseState, ReleaseStatus } from './types.ts';

export interface HelmClientOptions {
  helmBinary: string;
  kubeconfigPath: string;
  /** A context of the kubeconfig other than its current one. */
  kubeContext?: string;
  /**
   * Helm's own state (HELM_CACHE_HOME, HELM_CONFIG_HOME, HELM_DATA_HOME) and the short-lived values files; a fresh
   * temporary folder when omitted. Never the operator's ~/.config/helm.
   */
  homeDir?: string;
}

export interface WaitOptions {
  /** Wait for the release's Pods, Deployments... to be ready (`--wait`). */
  wait?: boolean;
  /** Helm's `--timeout` for each Kubernetes operation and the wait; Helm's default is 300 s. */
  timeoutSeconds?: number;
  /** Stops helm (SIGTERM) when aborted, e.g. on activity cancellation. */
  signal?: AbortSignal;
}

export interface InstallRequest extends WaitOptions {
  release: string;
  namespace: string;
  /** A packaged chart (.tgz) or a chart folder on the local filesystem. */
  chart: string;
  /** The complete values of this revision (`--reset-values`: nothing is carried over from the previous one). */
  values?: Record<string, unknown>;
  /** Roll back to the previous revision (or uninstall a first install) when the change fails; implies `wait`. */
  atomic?: boolean;
  /** Create the namespace when missing (default true). */
  createNamespace?: boolean;
  /** A description recorded in the release's history. */
  description?: string;
  /** Revisions kept per release (Helm's default is 10). */
  historyMax?: number;
}

export interface RollbackRequest extends WaitOptions {
  release: string;
  namespace: string;
  /** The revision to return to; 0 or omitted means the previous one. */
  revision?: number;
}

export interface UninstallRequest extends WaitOptions {
  release: string;
  namespace: string;
}

/** Kubernetes' DNS-1123 label: also what keeps a name from being read by helm as a flag. */
const dnsLabel = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
/** Helm's own rule for release names (chartutil.ValidateReleaseName). */
const releaseName = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

function invalid(message: string): PeerError {
  return new PeerError('helm', message, { retryable: false, reason: 'InvalidInput' });
}

function checkNames(release: string, namespace: string): void {
  if (release.length > 53 || !releaseName.test(release)) {
    throw invalid(`invalid release name "${release}": lowercase letters, digits, "-" and ".", at most 53 characters`);
  }
  if (namespace.length > 63 || !dnsLabel.test(namespace)) {
    throw invalid(`invalid namespace "${namespace}": a DNS-1123 label of at most 63 characters`);
  }
}

function parseJson<T>(what: string, stdout: string, parse: (v: unknown) => T): T {
  try {
    return parse(JSON.parse(stdout));
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    throw new PeerError('helm', `${what}: helm printed unexpected JSON: ${detail.slice(0, 500)}`, {
      retryable: false,
      reason: 'HelmFailed',
    });
  }
}

/** Helm's `--timeout` plus a grace period: helm is expected to give up first and say why. */
function processTimeoutMs(timeoutSeconds: number | undefined, phases = 1): number {
  return ((timeoutSeconds ?? 300) * phases + 60) * 1000;
}

function waitFlags(o: WaitOptions): string[] {
  return [
    ...(o.wait === true ? ['--wait'] : []),
    ...(o.timeoutSeconds === undefined ? [] : ['--timeout', `${o.timeoutSeconds}s`]),
  ];
}

export class HelmClient {
  readonly #run: HelmRunOptions;
  readonly #ownsHome: boolean;

  constructor(opts: HelmClientOptions) {
    this.#ownsHome = opts.homeDir === undefined;
    const homeDir = opts.homeDir ?? mkdtempSync(join(tmpdir(), 'icn-helm-'));
    this.#run = {
      helmBinary: opts.helmBinary,
      kubeconfigPath: opts.kubeconfigPath,
      homeDir,
      ...(opts.kubeContext === undefined ? {} : { kubeContext: opts.kubeContext }),
    };
  }

  /** Helm's state folder (cache, config, data). */
  get homeDir(): string {
    return this.#run.homeDir;
  }

  /** The helm binary's version, e.g. "v3.22.0". */
  async version(): Promise<string> {
    const { stdout } = await runHelm(this.#run, {
      args: ['version', '--template', '{{.Version}}'],
      what: 'helm version',
      secrets: [],
      processTimeoutMs: 30_000,
    });
    return stdout.trim();
  }

  /**
   * `helm upgrade --install`: installs the release or moves it to this chart and these values; idempotent (the same
   * request again only adds a revision). Returns the new revision's status.
   */
  async installOrUpgrade(req: InstallRequest): Promise<ReleaseStatus> {
    checkNames(req.release, req.namespace);
    const what = `helm upgrade --install of release "${req.release}" in namespace "${req.namespace}"`;
    const chart = resolve(req.chart);
    try {
      statSync(chart);
    } catch {
      throw new PeerError('helm', `${what} failed: chart ${chart} does not exist`, {
        retryable: false,
        reason: 'InvalidChart',
      });
    }
    const secrets = valueStrings(req.values ?? {});
    await mkdir(this.#run.homeDir, { recursive: true, mode: 0o700 });
    const valuesDir = await mkdtemp(join(this.#run.homeDir, 'values-'));
    try {
      const valuesFile = join(valuesDir, 'values.yaml');
      // Helm reads values as YAML 1.1, where an unquoted yes/no/on/off is a boolean: written as 1.1, such strings are quoted.
      await writeFile(valuesFile, stringify(req.values ?? {}, { version: '1.1' }), { mode: 0o600, flag: 'wx' });
      const { stdout } = await runHelm(this.#run, {
        args: [
          'upgrade',
          '--install',
          req.release,
          chart,
          '--namespace',
          req.namespace,
          ...(req.createNamespace === false ? [] : ['--create-namespace']),
          '--values',
          valuesFile,
          '--reset-values',
          ...(req.atomic === true ? ['--atomic'] : []),
          ...waitFlags(req),
          ...(req.description === undefined ? [] : ['--description', req.description]),
          ...(req.historyMax === undefined ? [] : ['--history-max', String(req.historyMax)]),
          '--output',
          'json',
        ],
        what,
        secrets,
        // An atomic change that fails waits once for itself and once for its rollback.
        processTimeoutMs: processTimeoutMs(req.timeoutSeconds, req.atomic === true ? 2 : 1),
        ...(req.signal === undefined ? {} : { signal: req.signal }),
      });
      return parseJson(what, stdout, (v) => toReleaseStatus(releaseJsonSchema.parse(v)));
    } finally {
      await rm(valuesDir, { recursive: true, force: true });
    }
  }

  /** `helm rollback`: a new revision with the given revision's chart and values. Returns the new revision's status. */
  async rollback(req: RollbackRequest): Promise<ReleaseStatus> {
    checkNames(req.release, req.namespace);
    const target = req.revision ?? 0;
    await runHelm(this.#run, {
      args: ['rollback', req.release, String(target), '--namespace', req.namespace, ...waitFlags(req)],
      what: `helm rollback of release "${req.release}" in namespace "${req.namespace}" to revision ${target === 0 ? '(previous)' : target}`,
      secrets: [],
      processTimeoutMs: processTimeoutMs(req.timeoutSeconds),
      ...(req.signal === undefined ? {} : { signal: req.signal }),
    });
    return this.status(req.release, req.namespace);
  }

  /** The release's current revision; a PeerError with reason NotFound when there is no such release. */
  async status(release: string, namespace: string): Promise<ReleaseStatus> {
    checkNames(release, namespace);
    const what = `helm status of release "${release}" in namespace "${namespace}"`;
    // `helm status -o json` strips the chart; `helm get metadata` has revision, status, chart and versions.
    const { stdout } = await runHelm(this.#run, {
      args: ['get', 'metadata', release, '--namespace', namespace, '--output', 'json'],
      what,
      secrets: [],
      processTimeoutMs: processTimeoutMs(60),
    });
    return parseJson(what, stdout, (v) => metadataToReleaseStatus(metadataJsonSchema.parse(v)));
  }

  /** Like status, but undefined when the release does not exist. */
  async findRelease(release: string, namespace: string): Promise<ReleaseStatus | undefined> {
    try {
      return await this.status(release, namespace);
    } catch (err) {
      if (err instanceof PeerError && err.reason === 'NotFound') return undefined;
      throw err;
    }
  }

  /** The release's revisions, oldest first (at most `max`, the newest ones). */
  async history(release: string, namespace: string, max?: number): Promise<HistoryEntry[]> {
    checkNames(release, namespace);
    const what = `helm history of release "${release}" in namespace "${namespace}"`;
    const { stdout } = await runHelm(this.#run, {
      args: [
        'history',
        release,
        '--namespace',
        namespace,
        '--output',
        'json',
        ...(max === undefined ? [] : ['--max', String(max)]),
      ],
      what,
      secrets: [],
      processTimeoutMs: processTimeoutMs(60),
    });
    return parseJson(what, stdout, (v) => toHistory(historyJsonSchema.parse(v)));
  }

  /** `helm uninstall`; idempotent: a missing release is success. Tells whether there was one to remove. */
  async uninstall(req: UninstallRequest): Promise<{ existed: boolean }> {
    checkNames(req.release, req.namespace);
    let existed = true;
    await runHelm(this.#run, {
      args: ['uninstall', req.release, '--namespace', req.namespace, ...waitFlags(req)],
      what: `helm uninstall of release "${req.release}" in namespace "${req.namespace}"`,
      secrets: [],
      processTimeoutMs: processTimeoutMs(req.timeoutSeconds),
      ...(req.signal === undefined ? {} : { signal: req.signal }),
      accept: (stderr) => {
        existed = !/release: not found/i.test(stderr);
        return !existed;
      },
    });
    return { existed };
  }

  /**
   * `helm package`: a chart folder into `<name>-<version>.tgz` under destDir, optionally overriding the version and
   * appVersion of Chart.yaml. Returns the archive's path.
   */
  async packageChart(
    chartDir: string,
    destDir: string,
    opts: { version?: string; appVersion?: string } = {},
  ): Promise<string> {
    const what = `helm package of chart ${chartDir}`;
    const { stdout } = await runHelm(this.#run, {
      args: [
        'package',
        resolve(chartDir),
        '--destination',
        resolve(destDir),
        ...(opts.version === undefined ? [] : ['--version', opts.version]),
        ...(opts.appVersion === undefined ? [] : ['--app-version', opts.appVersion]),
      ],
      what,
      secrets: [],
      processTimeoutMs: 60_000,
    });
    // "Successfully packaged chart and saved it to: /path/name-0.1.0.tgz"
    const match = /saved it to: (.+\.tgz)\s*$/m.exec(stdout);
    if (match?.[1] === undefined) {
      throw new PeerError('helm', `${what}: unexpected output: ${stdout.trim()}`, {
        retryable: false,
        reason: 'HelmFailed',
      });
    }
    return match[1];
  }

  /** Removes the temporary state folder this client made for itself (never one given in the options). */
  close(): void {
    if (this.#ownsHome) rmSync(this.#run.homeDir, { recursive: true, force: true });
  }
}
