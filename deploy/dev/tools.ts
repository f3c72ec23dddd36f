/**
 * Built tools live in a cache outside the clone, keyed by name and version, so that fresh clones and CI runs on the
 * same machine reuse them and a new machine builds each once. A build goes to a temporary folder that is renamed into
 * place only when complete: an interrupted build never leaves a half tool behind.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { isAlive } from './lab/processes.ts';

export const toolsDir = process.env.ICN_TOOLS_DIR ?? join(homedir(), '.cache', 'icn-orchestrator', 'tools');

export interface GoTool {
  name: string;
  version: string;
  /** The binaries the build must produce. */
  binaries: string[];
  /** Builds into `outDir` (GOBIN); runs only when the cached folder is missing. */
  build: (outDir: string, env: NodeJS.ProcessEnv) => void;
}

export class ToolBuildError extends Error {
  override name = 'ToolBuildError';
}

export function toolPath(tool: GoTool, binary = tool.binaries[0] ?? tool.name): string {
  return join(toolsDir, `${tool.name}-${tool.version}`, binary);
}

function requireGo(): string {
  const go = spawnSync('go', ['version'], { encoding: 'utf8' });
  if (go.status !== 0) {
    throw new ToolBuildError(
      'Go is required to build the project\'s tools (temporal, helm, kube-apiserver, kwok) but "go version" failed. ' +
        'Install Go 1.25 or newer and put it on PATH.',
    );
  }
  return go.stdout.trim();
}

/** Returns the folder holding the tool's binaries, building it first if the cache lacks it. */
export function ensureGoTool(tool: GoTool): string {
  const dir = join(toolsDir, `${tool.name}-${tool.version}`);
  if (tool.binaries.every((b) => existsSync(join(dir, b)))) return dir;
  const release = lockTool(dir, tool);
  try {
    // Another process may have finished the build while this one waited for the lock.
    if (tool.binaries.every((b) => existsSync(join(dir, b)))) return dir;
    return buildTool(tool, dir);
  } finally {
    release();
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * One build per tool at a time across processes (parallel test files, lab peers, CI): a lock folder holding the
 * builder's pid; a lock whose builder died is taken over.
 */
function lockTool(dir: string, tool: GoTool): () => void {
  const lock = `${dir}.lock`;
  mkdirSync(toolsDir, { recursive: true });
  let announced = false;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      return () => {
        rmSync(lock, { recursive: true, force: true });
      };
    } catch {
      const owner = Number(existsSync(join(lock, 'pid')) ? readFileSync(join(lock, 'pid'), 'utf8') : 0);
      if (owner > 0 && !isAlive(owner)) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (!announced) console.error(`[tools] waiting for another process building ${tool.name} ${tool.version}`);
      announced = true;
      sleepSync(2000);
    }
  }
}

function buildTool(tool: GoTool, dir: string): string {
  const goVersion = requireGo();
  const partial = `${dir}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(partial, { recursive: true });
  const started = Date.now();
  console.error(`[tools] building ${tool.name} ${tool.version} with ${goVersion} (first time only; takes minutes)`);
  try {
    tool.build(partial, { ...process.env, GOBIN: partial, GOFLAGS: '-buildvcs=false', CGO_ENABLED: '0' });
  } catch (err) {
    rmSync(partial, { recursive: true, force: true });
    const detail = err instanceof Error ? err.message : String(err);
    throw new ToolBuildError(
      `building ${tool.name} ${tool.version} failed (is the Go module proxy reachable? GOPROXY=${process.env.GOPROXY ?? 'default'}):\n${detail}`,
      { cause: err },
    );
  }
  for (const b of tool.binaries) {
    if (!existsSync(join(partial, b))) throw new ToolBuildError(`building ${tool.name} produced no ${b}`);
  }
  rmSync(dir, { recursive: true, force: true });
  renameSync(partial, dir);
  console.error(
    `[tools] ${tool.name} ${tool.version} built in ${Math.round((Date.now() - started) / 1000)} s → ${dir}`,
  );
  return dir;
}

/** Runs a Go command, surfacing its output only when it fails. */
export function go(args: string[], opts: { cwd?: string; env: NodeJS.ProcessEnv }): string {
  try {
    return execFileSync('go', args, { ...opts, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`go ${args.join(' ')}: ${e.stderr ?? e.message}`, { cause: err });
  }
}

/**
 * The newest temporal CLI tag whose go.mod has no replace directive (later tags need a wrapper module for cliext).
 */
export const temporalCli: GoTool = {
  name: 'temporal',
  version: 'v1.5.1',
  binaries: ['temporal'],
  build: (_out, env) => {
    go(['install', 'github.com/temporalio/cli/cmd/temporal@v1.5.1'], { env });
  },
};

// ---- Kubernetes API lab peer (issue 4): kube-apiserver and kwok ----

const kubernetesVersion = 'v1.34.2';

/**
 * k8s.io/kubernetes cannot be `go install`ed: its go.mod replaces every k8s.io/* staging module with a local folder. A
 * wrapper module requires it and replaces each staging module with its published v0.x twin instead; the list comes
 * from kubernetes' own go.mod so that it follows the version. The version ldflags make `/version` (and the emulation
 * version the server derives from it) say what was built, as the release scripts do.
 */
export const kubeApiserver: GoTool = {
  name: 'kube-apiserver',
  version: kubernetesVersion,
  binaries: ['kube-apiserver'],
  build: (outDir, env) => {
    const stagingVersion = kubernetesVersion.replace(/^v1\./, 'v0.');
    const download = JSON.parse(
      go(['mod', 'download', '-json', `k8s.io/kubernetes@${kubernetesVersion}`], { env }),
    ) as {
      GoMod: string;
    };
    const upstream = JSON.parse(go(['mod', 'edit', '-json', download.GoMod], { env })) as {
      Replace?: { Old: { Path: string }; New: { Path: string } }[];
    };
    const staging = (upstream.Replace ?? []).filter((r) => r.New.Path.startsWith('./staging/')).map((r) => r.Old.Path);
    if (staging.length === 0) throw new Error(`k8s.io/kubernetes@${kubernetesVersion} lists no staging modules`);
    const moduleDir = `${outDir}-module`;
    rmSync(moduleDir, { recursive: true, force: true });
    mkdirSync(moduleDir, { recursive: true });
    try {
      const at = { cwd: moduleDir, env };
      go(['mod', 'init', 'icn-orchestrator.local/kube-apiserver-build'], at);
      go(
        [
          'mod',
          'edit',
          `-require=k8s.io/kubernetes@${kubernetesVersion}`,
          ...staging.map((m) => `-replace=${m}=${m}@${stagingVersion}`),
        ],
        at,
      );
      const [major = '1', minor = '0'] = kubernetesVersion.slice(1).split('.');
      const ldflags = ['k8s.io/component-base/version', 'k8s.io/client-go/pkg/version']
        .flatMap((pkg) => [
          `-X ${pkg}.gitVersion=${kubernetesVersion}`,
          `-X ${pkg}.gitMajor=${major}`,
          `-X ${pkg}.gitMinor=${minor}`,
          `-X ${pkg}.gitTreeState=clean`,
          `-X ${pkg}.buildDate=1970-01-01T00:00:00Z`,
        ])
        .join(' ');
      go(
        [
          'build',
          '-mod=mod',
          '-trimpath',
          `-ldflags=-s -w ${ldflags}`,
          '-o',
          join(outDir, 'kube-apiserver'),
          'k8s.io/kubernetes/cmd/kube-apiserver',
        ],
        at,
      );
    } finally {
      rmSync(moduleDir, { recursive: true, force: true });
    }
  },
};

/** v0.7.0 is the last kwok with built-in stages (nodes Ready, scheduled pods Running) without `-c` stage files. */
export const kwok: GoTool = {
  name: 'kwok',
  version: 'v0.7.0',
  binaries: ['kwok'],
  build: (_out, env) => {
    go(['install', 'sigs.k8s.io/kwok/cmd/kwok@v0.7.0'], { env });
  },
};
/**
 * etcd 3.5 rather than Debian's 3.4: the API server turns watch progress requests (and with them streaming lists,
 * which kwok's informers use) on only for etcd >= 3.5.13; against 3.4 kwok falls back to relisting and crashes on a
 * deletion it missed. The server module has no replace directives, but `go install` of it would skip the version
 * resolution a wrapper module gives, so it is built the same way as kube-apiserver.
 */
export const etcd: GoTool = {
  name: 'etcd',
  version: 'v3.5.21',
  binaries: ['etcd'],
  build: (outDir, env) => {
    const moduleDir = `${outDir}-module`;
    rmSync(moduleDir, { recursive: true, force: true });
    mkdirSync(moduleDir, { recursive: true });
    try {
      const at = { cwd: moduleDir, env };
      go(['mod', 'init', 'icn-orchestrator.local/etcd-build'], at);
      go(['get', 'go.etcd.io/etcd/server/v3@v3.5.21'], at);
      go(['build', '-trimpath', '-ldflags=-s -w', '-o', join(outDir, 'etcd'), 'go.etcd.io/etcd/server/v3'], at);
    } finally {
      rmSync(moduleDir, { recursive: true, force: true });
    }
  },
};
// ---- end of Kubernetes API lab peer tools ----

// ---- Helm (issue 4) ----

const helmVersion = 'v3.22.0';

/**
 * The newest Helm v3 tag on the Go module proxy; its go.mod has no replace directive, so `go install` works as is. The
 * version ldflag makes `helm version` report the tag rather than the source default. Cold build measured here: 3 to
 * 4.5 minutes (2 CPUs, empty module and build caches, alone or beside another Go build).
 */
export const helm: GoTool = {
  name: 'helm',
  version: helmVersion,
  binaries: ['helm'],
  build: (_out, env) => {
    go(
      [
        'install',
        '-trimpath',
        `-ldflags=-s -w -X helm.sh/helm/v3/internal/version.version=${helmVersion} -X helm.sh/helm/v3/internal/version.gitTreeState=clean`,
        `helm.sh/helm/v3/cmd/helm@${helmVersion}`,
      ],
      { env },
    );
  },
};
// ---- end of Helm ----

// ---- Temporal server on PostgreSQL (issue 9) ----

const temporalServerVersion = 'v1.32.1';

/**
 * The Temporal server itself (every service in one process, SQL plugins for PostgreSQL, MySQL and SQLite linked in) and
 * its schema tool, both from the server module. v1.32.1 is the newest tag whose go.mod has no replace directive and
 * needs no Go newer than 1.26.8 (v1.32.2 asks for 1.26.10, which would make Go fetch another toolchain). The schema
 * files are embedded in temporal-sql-tool (`--schema-name postgresql/v12/temporal`); they are copied beside the
 * binaries too, so an operator can read what the tool applies. The version ldflag is not needed: the server reports
 * the version compiled into go.temporal.io/server/common/headers.
 */
export const temporalServer: GoTool = {
  name: 'temporal-server',
  version: temporalServerVersion,
  binaries: ['temporal-server', 'temporal-sql-tool'],
  build: (outDir, env) => {
    const module = `go.temporal.io/server@${temporalServerVersion}`;
    const binDir = join(outDir, 'bin');
    mkdirSync(binDir, { recursive: true });
    const at = { env: { ...env, GOBIN: binDir } };
    go(['install', '-trimpath', '-ldflags=-s -w', `go.temporal.io/server/cmd/server@${temporalServerVersion}`], at);
    go(['install', '-trimpath', '-ldflags=-s -w', `go.temporal.io/server/cmd/tools/sql@${temporalServerVersion}`], at);
    renameSync(join(binDir, 'server'), join(outDir, 'temporal-server'));
    renameSync(join(binDir, 'sql'), join(outDir, 'temporal-sql-tool'));
    rmSync(binDir, { recursive: true, force: true });
    const download = JSON.parse(go(['mod', 'download', '-json', module], { env })) as { Dir: string };
    cpSync(join(download.Dir, 'schema', 'postgresql'), join(outDir, 'schema', 'postgresql'), { recursive: true });
    // Files from the module cache are read-only; the copy must be removable like the rest of the cache.
    chmodTree(join(outDir, 'schema'));
  },
};

function chmodTree(path: string): void {
  for (const entry of readdirSync(path, { withFileTypes: true })) {
    const full = join(path, entry.name);
    if (entry.isDirectory()) {
      chmodSync(full, 0o755);
      chmodTree(full);
    } else chmodSync(full, 0o644);
  }
  chmodSync(path, 0o755);
}
// ---- end of Temporal server ----

export const allTools: GoTool[] = [temporalCli, kubeApiserver, kwok, etcd, helm, temporalServer];

// `npm run tools` builds whatever the cache lacks.
// `npm run tools [name...]` builds whatever the cache lacks (all tools, or the ones named).
if (import.meta.main) {
  const names = process.argv.slice(2);
  const unknown = names.filter((n) => !allTools.some((t) => t.name === n));
  if (unknown.length > 0)
    throw new Error(`unknown tool(s) ${unknown.join(', ')}; known: ${allTools.map((t) => t.name).join(', ')}`);
  for (const tool of allTools.filter((t) => names.length === 0 || names.includes(t.name))) {
    console.log(`${tool.name} ${tool.version}: ${ensureGoTool(tool)}`);
  }
}
