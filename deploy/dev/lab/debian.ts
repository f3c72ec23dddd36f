/** Debian packages the lab needs, installed only when missing, one apt at a time (flock) across parallel callers. */
import { execFileSync, spawnSync } from 'node:child_process';

export function missingPackages(packages: string[]): string[] {
  return packages.filter((p) => {
    const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', p], { encoding: 'utf8' });
    return !r.stdout.includes('install ok installed');
  });
}

export function ensureDebianPackages(packages: string[], log: (m: string) => void): void {
  const missing = missingPackages(packages);
  if (missing.length === 0) return;
  log(`installing Debian packages: ${missing.join(' ')} (first time only; about a minute)`);
  const script = `apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ${missing.join(' ')}`;
  try {
    execFileSync('flock', ['/tmp/icn-orchestrator-apt.lock', 'sh', '-c', script], {
      stdio: ['ignore', 'pipe', 'pipe'],
      encoding: 'utf8',
    });
  } catch (err) {
    const e = err as { stderr?: string; message: string };
    throw new Error(`could not install ${missing.join(' ')} with apt-get (run as root?): ${e.stderr ?? e.message}`, {
      cause: err,
    });
  }
}
