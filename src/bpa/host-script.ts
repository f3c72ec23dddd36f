/**
 * The shell scripts the BPA runs on a host: one per package and host, so that receiving the artifact, checking its
 * sha256, installing, verifying and recording the version cost one SSH command (one shell on the host), not one per
 * step. Everything lives under `${HOST_ROOT:-}/var/lib/icn-bpa` (HOST_ROOT is set only on the lab's simulated hosts):
 *
 *   artifacts/<sha256>        the package files, kept so that a rollback needs no new upload
 *   specs/<sha256>.{install,verify,rollback}   the commands each version was installed with
 *   packages/<name>           "<version> <sha256>" per line: the current version first, then the earlier ones
 *
 * A flock on `lock` serialises the BPA's scripts on a host, also across BPA restarts: a script still running for a
 * BPA that died finishes first, and the retried one then finds the version recorded and does nothing twice.
 */
import type { BinaryPackage } from '../domain/software-profile.ts';

export function shellQuote(value: string): string {
  return `'${value.replaceAll("'", "'\\''")}'`;
}

/** Script exit codes, read back by the installer. */
export const exitCodes = {
  setup: 90,
  lock: 91,
  truncated: 92,
  checksum: 93,
  install: 94,
  verify: 95,
  nothingToRollBack: 96,
  missingArtifact: 97,
} as const;

/** How the artifact reaches the host: on the command's stdin, already there (uploaded by sftp to `path`), or kept. */
export type ArtifactDelivery = { kind: 'stdin'; size: number } | { kind: 'uploaded'; path: string };

const prelude = [
  // The BPA may vanish mid-script (a restart): the script still finishes and records, rather than dying on output.
  "trap '' PIPE HUP",
  'R="${HOST_ROOT:-}"',
  'D="$R/var/lib/icn-bpa"',
  // Every process started costs a fork and an exec on the host, which is most of the BPA's cost there at scale:
  // builtins wherever they do.
  `[ -d "$D/specs" ] || mkdir -p "$D/artifacts" "$D/packages" "$D/specs" || exit ${exitCodes.setup}`,
  `exec 9>>"$D/lock" && flock 9 || exit ${exitCodes.lock}`,
  'say() { printf "icn-bpa: %s\\n" "$*"; }',
  'cur=""',
];

/** Runs a stored command in a subshell (a fork, no exec) with the package's environment, its output kept apart. */
function runStored(file: string, code: number, what: string): string[] {
  return [
    `( . "${file}" ) >"$D/.out" 2>&1; rc=$?`,
    `if [ "$rc" -ne 0 ]; then say "${what} exited $rc"; tail -c 2000 "$D/.out" >&2; exit ${code}; fi`,
  ];
}

/** `cur` := the first line of the package's record (its current "version sha256"), without a process. */
function readCurrent(name: string): string[] {
  return [`rec="$D/packages/${name}"`, '[ -f "$rec" ] && read -r cur < "$rec"'];
}

/**
 * Installs `pkg` unless the host is at its version already. With `stdin` the artifact's bytes follow on the
 * command's standard input; they are read only when the host lacks them.
 */
export function installScript(pkg: BinaryPackage, delivery: ArtifactDelivery): string {
  const sha = pkg.artifact.sha256;
  const name = pkg.name;
  const spec = (file: string) => `"$D/specs/${sha}.${file}"`;
  const store = (file: string, body: string) => `printf '%s\\n' ${shellQuote(body)} > ${spec(file)}`;
  const lines = [
    ...prelude,
    ...readCurrent(name),
    `if [ "$cur" = ${shellQuote(`${pkg.version} ${sha}`)} ]; then say "skipped"; exit 0; fi`,
    'say "from ${cur%% *}"',
    `A="$D/artifacts/${sha}"`,
    // An artifact already on the host was checked when it arrived (only a checked file is moved to its name).
    'if [ ! -f "$A" ]; then',
  ];
  if (delivery.kind === 'stdin') {
    // A copy cut off earlier (its script killed with its connection) is left over: under the lock, nobody writes it.
    lines.push(
      `  rm -f "$D/artifacts/.${sha}.part-"*`,
      `  T="$D/artifacts/.${sha}.part-$$"`,
      `  head -c ${delivery.size} > "$T"`,
    );
  } else {
    lines.push(`  T=${shellQuote(delivery.path)}`);
  }
  lines.push(
    '  h=$(sha256sum -- "$T"); h=${h%% *}',
    `  if [ "$h" != ${sha} ]; then`,
    ...(delivery.kind === 'stdin'
      ? [
          `    n=$(wc -c < "$T"); if [ "$n" -ne ${delivery.size} ]; then rm -f "$T"; say "received $n of ${delivery.size} bytes"; exit ${exitCodes.truncated}; fi`,
        ]
      : []),
    `    rm -f "$T"; say "sha256 $h"; exit ${exitCodes.checksum}`,
    '  fi',
    '  mv -f "$T" "$A"',
    'fi',
    store('install', pkg.install),
    store('verify', pkg.verify),
    pkg.rollback === undefined
      ? `[ ! -f ${spec('rollback')} ] || rm -f ${spec('rollback')}`
      : store('rollback', pkg.rollback),
    `export ICN_PACKAGE_NAME=${shellQuote(name)} ICN_PACKAGE_VERSION=${shellQuote(pkg.version)} ICN_PACKAGE_FILE="$A" ICN_PREVIOUS_VERSION="\${cur%% *}"`,
    ...runStored(spec('install').slice(1, -1), exitCodes.install, 'install'),
    ...runStored(spec('verify').slice(1, -1), exitCodes.verify, 'verify'),
    // The record is written before the result is told: a BPA gone meanwhile finds it on its retry. The new version
    // first, then the earlier ones (at most nine), each once.
    `{ echo ${shellQuote(`${pkg.version} ${sha}`)}; i=0; if [ -f "$rec" ]; then while read -r l; do [ "\${l#* }" = ${sha} ] || [ $i -ge 9 ] || { echo "$l"; i=$((i + 1)); }; done < "$rec"; fi; } > "$rec.tmp" && mv -f "$rec.tmp" "$rec"`,
    'say "installed"',
  );
  return lines.join('\n');
}

/**
 * Goes back from `pkg` (the version given up) to the version recorded before it: its own rollback command when it
 * has one, else the earlier version's install command; then the earlier version's verify command.
 */
export function rollbackScript(pkg: BinaryPackage): string {
  const sha = pkg.artifact.sha256;
  return [
    ...prelude,
    ...readCurrent(pkg.name),
    `if [ "\${cur#* }" != ${sha} ]; then say "skipped \${cur%% *}"; exit 0; fi`,
    'prev=$(sed -n 2p "$rec")',
    `if [ -z "$prev" ]; then say "no earlier version"; exit ${exitCodes.nothingToRollBack}; fi`,
    'pv=${prev%% *}; ps=${prev#* }',
    'A="$D/artifacts/$ps"',
    `if [ ! -f "$A" ] || [ ! -f "$D/specs/$ps.install" ]; then say "version $pv is no longer on the host"; exit ${exitCodes.missingArtifact}; fi`,
    'say "to $pv $ps"',
    `export ICN_PACKAGE_NAME=${shellQuote(pkg.name)} ICN_PACKAGE_VERSION="$pv" ICN_PACKAGE_FILE="$A" ICN_PREVIOUS_VERSION=${shellQuote(pkg.version)}`,
    `if [ -f "$D/specs/${sha}.rollback" ]; then`,
    ...runStored(`$D/specs/${sha}.rollback`, exitCodes.install, 'rollback').map((l) => `  ${l}`),
    'else',
    ...runStored('$D/specs/$ps.install', exitCodes.install, 'install').map((l) => `  ${l}`),
    'fi',
    ...runStored('$D/specs/$ps.verify', exitCodes.verify, 'verify'),
    'tail -n +2 "$rec" > "$rec.tmp" && mv -f "$rec.tmp" "$rec"',
    'say "rolled-back"',
  ].join('\n');
}

/** The `icn-bpa:` lines a script printed, in order. */
export function scriptSays(stdout: string): string[] {
  return stdout
    .split('\n')
    .filter((l) => l.startsWith('icn-bpa: '))
    .map((l) => l.slice('icn-bpa: '.length));
}
