/**
 * Built tools live in a cache outside the clone, keyed by name and version, so that fresh clones and CI runs on the
 * same machine reuse them and a new machine builds each once. A build goes to a temporary folder that is renamed into
 * place only when complete: an interrupted build never leaves a half tool behind.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, renameSync, rmSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';

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

export const allTools: GoTool[] = [temporalCli];

// `npm run tools` builds whatever the cache lacks.
if (import.meta.main) {
  for (const tool of allTools) console.log(`${tool.name} ${tool.version}: ${ensureGoTool(tool)}`);
}
