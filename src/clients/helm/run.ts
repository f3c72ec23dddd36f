/**
 * Runs the helm binary: its own cache/config/data homes (nothing leaks into ~/ and no operator setting leaks in), the
 * kubeconfig passed explicitly, a process deadline past Helm's own timeout, cancellation through an AbortSignal, and
 * every failure turned into a classified, scrubbed PeerError.
 */
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { type Classification, helmError } from './errors.ts';

export interface HelmRunOptions {
  helmBinary: string;
  kubeconfigPath: string;
  kubeContext?: string;
  /** Holds HELM_CACHE_HOME, HELM_CONFIG_HOME and HELM_DATA_HOME. */
  homeDir: string;
}

export interface RunRequest {
  args: string[];
  /** What the error message names: "helm upgrade --install of release "r" in namespace "ns"". */
  what: string;
  /** Strings to scrub from any error message (the values' strings). */
  secrets: Iterable<string>;
  /** Kill helm after this long; Helm's own `--timeout` should end it first. */
  processTimeoutMs: number;
  signal?: AbortSignal;
  /** Lets an operation treat a failure as a result (uninstall of a missing release). */
  accept?: (stderr: string) => boolean;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Variables of the caller's environment that would change what helm does (namespace, context, driver, homes). */
function cleanEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('HELM_') || k === 'KUBECONFIG') continue;
    env[k] = v;
  }
  return env;
}

export function helmEnv(homeDir: string): NodeJS.ProcessEnv {
  return {
    ...cleanEnv(),
    HELM_CACHE_HOME: join(homeDir, 'cache'),
    HELM_CONFIG_HOME: join(homeDir, 'config'),
    HELM_DATA_HOME: join(homeDir, 'data'),
  };
}

export function runHelm(opts: HelmRunOptions, req: RunRequest): Promise<RunResult> {
  const args = [
    ...req.args,
    '--kubeconfig',
    opts.kubeconfigPath,
    ...(opts.kubeContext === undefined ? [] : ['--kube-context', opts.kubeContext]),
  ];
  return new Promise((resolve, reject) => {
    execFile(
      opts.helmBinary,
      args,
      {
        env: helmEnv(opts.homeDir),
        encoding: 'utf8',
        maxBuffer: 256 * 1024 * 1024,
        timeout: req.processTimeoutMs,
        killSignal: 'SIGTERM',
        ...(req.signal === undefined ? {} : { signal: req.signal }),
      },
      (err, stdout, stderr) => {
        if (err === null) {
          resolve({ stdout, stderr });
          return;
        }
        // The cause is left out on purpose: Node's error message repeats helm's raw stderr, values and all.
        const e = err as NodeJS.ErrnoException & { killed?: boolean };
        if (e.code === 'ENOENT' || e.code === 'EACCES') {
          reject(
            helmError(req.what, `cannot run helm binary ${opts.helmBinary}: ${e.code}`, [], {
              classification: { retryable: false, reason: 'HelmMissing' },
            }),
          );
          return;
        }
        if (e.name === 'AbortError') {
          reject(
            helmError(req.what, `cancelled; helm was stopped. ${stderr}`, req.secrets, {
              classification: { retryable: true, reason: 'Timeout' },
            }),
          );
          return;
        }
        if (e.killed === true) {
          const classification: Classification = { retryable: true, reason: 'Timeout' };
          reject(
            helmError(
              req.what,
              `helm did not finish within ${Math.round(req.processTimeoutMs / 1000)} s and was stopped. ${stderr}`,
              req.secrets,
              { classification },
            ),
          );
          return;
        }
        if (req.accept?.(stderr) === true) {
          resolve({ stdout, stderr });
          return;
        }
        reject(helmError(req.what, stderr, req.secrets, {}));
      },
    );
  });
}
