import type { OperationStatus } from '../../domain/operations.ts';
import type { ApiClient } from '../api-client.ts';
import { type OutputFormat, printData, printTable } from '../output.ts';

const closedOk = new Set(['COMPLETED']);
const closed = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'CANCELED', 'TERMINATED', 'TIMED_OUT', 'CONTINUED_AS_NEW']);

/**
 * Follows an operation until it closes, printing each change of step and of host or site state as it happens, and
 * returns the exit code: 0 completed, 1 anything else. Polling, not a stream: it survives API restarts and proxies.
 */
export async function follow(
  api: ApiClient,
  statusPath: string,
  opts: { intervalMs?: number; output: OutputFormat; log?: (line: string) => void },
): Promise<number> {
  const log =
    opts.log ??
    ((line: string) => {
      console.log(line);
    });
  const seen = new Map<string, string>();
  let step = '';
  for (;;) {
    const status = await api.get<OperationStatus>(statusPath);
    if (status.progress && status.progress.step !== step) {
      step = status.progress.step;
      log(`[${new Date().toISOString().slice(11, 19)}] ${step}`);
    }
    for (const [name, item] of Object.entries(status.progress?.items ?? {})) {
      const text = item.detail === undefined ? item.state : `${item.state} (${item.detail})`;
      if (seen.get(name) !== text) log(`  ${name}: ${text}`);
      seen.set(name, text);
    }
    if (closed.has(status.status)) {
      if (opts.output !== 'table') printData(status, opts.output);
      else if (status.failure) log(`${status.type} ${status.status.toLowerCase()}: ${status.failure}`);
      else log(`${status.type} ${status.status.toLowerCase()}`);
      return closedOk.has(status.status) ? 0 : 1;
    }
    await new Promise((resolve) => setTimeout(resolve, opts.intervalMs ?? 1000));
  }
}

export type SiteOperation = 'install' | 'patch' | 'upgrade' | 'reconcile';

/** Starts an operation on a site; follows it unless told not to wait. */
export async function startSiteOperation(
  api: ApiClient,
  site: string,
  operation: SiteOperation,
  body: object,
  opts: { wait: boolean; output: OutputFormat; intervalMs?: number },
): Promise<number> {
  const path = `/v1/sites/${encodeURIComponent(site)}`;
  const started = await api.post<{ workflowId: string; runId: string }>(`${path}/${operation}`, body);
  if (!opts.wait) {
    if (opts.output === 'table') console.log(`${operation} of ${site} started: ${started.workflowId}`);
    else printData(started, opts.output);
    return 0;
  }
  console.log(`${operation} of ${site} started (${started.workflowId}); Ctrl-C stops watching, not the operation`);
  return follow(api, `${path}/operations/${operation}`, opts);
}

export async function listSiteOperations(api: ApiClient, site: string, output: OutputFormat): Promise<void> {
  const { items } = await api.get<{
    items: { workflowId: string; type: string; status: string; startTime: string; closeTime?: string }[];
  }>(`/v1/sites/${encodeURIComponent(site)}/operations`);
  if (output !== 'table') {
    printData(items, output);
    return;
  }
  printTable(
    ['WORKFLOW', 'TYPE', 'STATUS', 'STARTED', 'CLOSED'],
    items.map((i) => [i.workflowId, i.type, i.status, i.startTime, i.closeTime ?? '-']),
    'No operations.',
  );
}

/** `name@version`, as operators write a profile reference on the command line. */
export function parseProfileRef(value: string): { name: string; version: string } {
  const at = value.lastIndexOf('@');
  if (at <= 0 || at === value.length - 1) throw new Error(`"${value}" is not NAME@VERSION, e.g. edge-base@1.1.0`);
  return { name: value.slice(0, at), version: value.slice(at + 1) };
}
