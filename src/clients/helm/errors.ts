/**
 * Helm's failures, classified from its stderr (Helm has no machine-readable error codes): a release locked by another
 * operation, an unreachable or overloaded API server and a wait that ran out of time pass with time (retryable); a
 * broken chart, invalid values, a missing release or refused credentials do not. Messages never carry the values the
 * caller passed: every string in them is scrubbed from Helm's output before it becomes an error message.
 */
import { PeerError } from '../errors.ts';

export type HelmErrorReason =
  | 'OperationInProgress'
  | 'Unreachable'
  | 'Timeout'
  | 'NotFound'
  | 'AuthFailed'
  | 'InvalidChart'
  | 'InvalidInput'
  | 'HelmMissing'
  | 'HelmFailed';

export interface Classification {
  retryable: boolean;
  reason: HelmErrorReason;
}

const rules: [RegExp, Classification][] = [
  // The release's last revision is pending-install/upgrade/rollback: another helm holds it.
  [
    /another operation \(install\/upgrade\/rollback\) is in progress/i,
    { retryable: true, reason: 'OperationInProgress' },
  ],
  [
    /connection refused|connection reset|no route to host|no such host|i\/o timeout|TLS handshake timeout|http2: client connection lost|": EOF$|the server is currently unable to handle the request|Service Unavailable|etcdserver: (request timed out|leader changed)|Too Many Requests|the server has received too many requests/im,
    { retryable: true, reason: 'Unreachable' },
  ],
  [
    /timed out waiting for the condition|context deadline exceeded|timeout waiting for/i,
    { retryable: true, reason: 'Timeout' },
  ],
  [
    /Unauthorized|is forbidden: User|x509: |certificate signed by unknown authority/i,
    { retryable: false, reason: 'AuthFailed' },
  ],
  [
    /release: not found|has no deployed releases|revision .* not found|release has no \d+ version/i,
    { retryable: false, reason: 'NotFound' },
  ],
  [
    /invalid release name|release name .* (is invalid|exceeds max length)|invalid namespace|must be no more than \d+ characters/i,
    { retryable: false, reason: 'InvalidInput' },
  ],
  [
    /parse error|YAML parse error|template: |unable to build kubernetes objects|error validating|values don't meet the specifications|chart requires|Chart\.yaml file is missing|not a valid chart|validation: |unable to decode|error converting YAML|execution error|path ".*" not found|file '.*' does not appear to be a gzipped archive|no kind ".*" is registered|resource mapping not found|is invalid: |cannot be handled as a|unknown field/i,
    { retryable: false, reason: 'InvalidChart' },
  ],
];

export function classifyHelmError(stderr: string): Classification {
  for (const [pattern, classification] of rules) if (pattern.test(stderr)) return classification;
  return { retryable: false, reason: 'HelmFailed' };
}

/** Every string leaf of a values tree (also inside arrays), the secrets among them included. */
export function valueStrings(values: unknown, into: Set<string> = new Set()): Set<string> {
  if (typeof values === 'string') {
    if (values.length > 0) into.add(values);
  } else if (Array.isArray(values)) {
    for (const v of values) valueStrings(v, into);
  } else if (typeof values === 'object' && values !== null) {
    for (const v of Object.values(values)) valueStrings(v, into);
  }
  return into;
}

function escapeRegExp(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Replaces every value string (and its JSON-escaped and per-line forms, as Helm may quote them) by `***`. Strings of
 * four characters or more are replaced wherever they occur; shorter ones only as whole words, so that a value such as
 * "a" does not erase every letter a of the message, while a short secret standing on its own is still hidden.
 */
export function scrub(text: string, secrets: Iterable<string>): string {
  const forms = new Set<string>();
  for (const s of secrets) {
    forms.add(s);
    forms.add(JSON.stringify(s).slice(1, -1));
    for (const line of s.split(/\r?\n/)) if (line.trim().length >= 4) forms.add(line.trim());
  }
  let out = text;
  for (const form of [...forms].sort((a, b) => b.length - a.length)) {
    if (form.length === 0) continue;
    if (form.length >= 4) out = out.split(form).join('***');
    else out = out.replace(new RegExp(`(?<![A-Za-z0-9_])${escapeRegExp(form)}(?![A-Za-z0-9_])`, 'g'), '***');
  }
  return out;
}

/** Helm prints "Error: <message>" plus, at times, warnings before it; keeps the meaningful lines. */
export function helmMessage(stderr: string): string {
  const lines = stderr
    .split(/\r?\n/)
    .map((l) => l.trimEnd().replace(/^Error: /, ''))
    .filter(
      (l) =>
        l.length > 0 && !/^WARNING: Kubernetes configuration file is (group|world)-readable|^Use --debug flag/.test(l),
    );
  const text = lines.join('\n').trim();
  return text.length > 4000 ? `${text.slice(0, 4000)}…` : text;
}

export function helmError(
  what: string,
  stderr: string,
  secrets: Iterable<string>,
  opts: { cause?: unknown; classification?: Classification },
): PeerError {
  const { retryable, reason } = opts.classification ?? classifyHelmError(stderr);
  const detail = scrub(helmMessage(stderr), secrets) || 'no output';
  return new PeerError('helm', `${what} failed: ${detail}`, { retryable, reason, cause: opts.cause });
}
