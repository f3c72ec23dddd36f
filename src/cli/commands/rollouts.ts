import type { OperationStatus, RolloutView } from '../../domain/operations.ts';
import type { ApiClient } from '../api-client.ts';
import { type OutputFormat, printData, printTable } from '../output.ts';

export interface RolloutOptions {
  /** Sites with all these labels; `-l ''` (an empty selector) is every site, written out on purpose. */
  selector?: Record<string, string>;
  /** Sites by name, alone or narrowed by the labels. */
  sites?: string[];
  operation: 'install' | 'patch' | 'upgrade';
  profile?: { name: string; version: string };
  maxUnavailable?: number;
  hostTakeover?: number;
  kubernetesVersion?: string;
  maxConcurrency?: number;
  canary?: string[];
  canarySoak?: number;
  canaryApproval?: boolean;
  maxFailures?: number | string;
  onFailureLimit?: 'stop' | 'pause';
  siteTimeout?: number;
  onSiteTimeout?: 'continue' | 'abort';
  window?: { start: string; end: string };
}

/** The rollout request body the API validates (and names each wrong field of). */
export function rolloutBody(o: RolloutOptions): object {
  return {
    selector: {
      ...(o.selector && { matchLabels: o.selector }),
      ...(o.sites && { names: o.sites }),
    },
    operation: o.operation,
    ...(o.profile && { profile: o.profile }),
    ...(o.maxUnavailable !== undefined && { maxUnavailable: o.maxUnavailable }),
    ...(o.hostTakeover !== undefined && { hostTakeoverSeconds: o.hostTakeover }),
    ...(o.kubernetesVersion && { kubernetesVersion: o.kubernetesVersion }),
    strategy: {
      ...(o.maxConcurrency !== undefined && { maxConcurrency: o.maxConcurrency }),
      ...(o.canary && { canarySites: o.canary }),
      ...(o.canarySoak !== undefined && { canarySoakSeconds: o.canarySoak }),
      ...(o.canaryApproval && { canaryApproval: true }),
      ...(o.maxFailures !== undefined && { maxFailures: o.maxFailures }),
      ...(o.onFailureLimit && { onFailureLimit: o.onFailureLimit }),
      ...(o.siteTimeout !== undefined && { siteTimeoutSeconds: o.siteTimeout }),
      ...(o.onSiteTimeout && { onSiteTimeout: o.onSiteTimeout }),
      ...(o.window && { maintenanceWindow: o.window }),
    },
  };
}

type RolloutStatus = OperationStatus & { rollout?: RolloutView };

const closedOk = new Set(['COMPLETED']);
const closed = new Set(['COMPLETED', 'FAILED', 'CANCELLED', 'CANCELED', 'TERMINATED', 'TIMED_OUT']);
const countOrder = ['total', 'pending', 'running', 'succeeded', 'failed', 'busy', 'cancelled', 'skipped'];

/** "12 succeeded, 3 running, ...": every count the rollout reports, in a fixed order, zeros left out but the total. */
export function countsLine(counts: Record<string, number>): string {
  const known = countOrder.filter((k) => k in counts);
  const rest = Object.keys(counts).filter((k) => !countOrder.includes(k));
  return [...known, ...rest]
    .filter((k) => k === 'total' || (counts[k] ?? 0) > 0)
    .map((k) => `${counts[k] ?? 0} ${k}`)
    .join(', ');
}

/**
 * Follows a rollout until it ends, printing each change of step, of a site's state and of the counts as it happens;
 * returns 0 when it completed, 1 otherwise. Polling, not a stream: it survives API restarts, proxies and the rollout's
 * continue-as-new (the API always answers for its newest run).
 */
export async function followRollout(
  api: ApiClient,
  id: string,
  opts: { intervalMs?: number; output: OutputFormat; log?: (line: string) => void },
): Promise<number> {
  const log =
    opts.log ??
    ((line: string) => {
      console.log(line);
    });
  const path = `/v1/rollouts/${encodeURIComponent(id)}`;
  const seen = new Map<string, string>();
  let step = '';
  let counts = '';
  for (;;) {
    const status = await api.get<RolloutStatus>(path);
    const progress = status.progress;
    const time = `[${new Date().toISOString().slice(11, 19)}]`;
    if (progress && progress.step !== step) {
      step = progress.step;
      log(`${time} ${step}`);
    }
    for (const [name, item] of Object.entries(progress?.items ?? {})) {
      const text = item.detail === undefined ? item.state : `${item.state} (${item.detail})`;
      if (seen.get(name) !== text) log(`  ${name}: ${text}`);
      seen.set(name, text);
    }
    const line = progress ? countsLine(progress.counts) + asOf(status) : '';
    if (line !== counts && line !== '') log(`${time} ${line}`);
    counts = line;
    if (closed.has(status.status)) {
      if (opts.output !== 'table') printData(status, opts.output);
      else if (status.failure) log(`rollout ${status.status.toLowerCase()}: ${status.failure}`);
      else log(`rollout ${status.status.toLowerCase()}`);
      return closedOk.has(status.status) ? 0 : 1;
    }
    await new Promise((resolve) => setTimeout(resolve, opts.intervalMs ?? 1000));
  }
}

export async function startRollout(
  api: ApiClient,
  o: RolloutOptions,
  opts: { wait: boolean; output: OutputFormat },
): Promise<number> {
  const started = await api.post<{ rolloutId: string; workflowId: string }>('/v1/rollouts', rolloutBody(o));
  if (!opts.wait) {
    if (opts.output === 'table') console.log(`rollout ${started.rolloutId} started`);
    else printData(started, opts.output);
    return 0;
  }
  console.log(`rollout ${started.rolloutId} started; Ctrl-C stops watching, not the rollout`);
  return followRollout(api, started.rolloutId, opts);
}

/** A progress the rollout recorded earlier (it did not answer in time) says when. */
function asOf(s: RolloutStatus): string {
  return s.progressAsOf === undefined ? '' : ` (as recorded at ${s.progressAsOf.slice(11, 19)}: the rollout is busy)`;
}

/** One look at a rollout, without following it. */
export async function showRollout(api: ApiClient, id: string, output: OutputFormat): Promise<void> {
  const s = await api.get<RolloutStatus>(`/v1/rollouts/${encodeURIComponent(id)}`);
  if (output !== 'table') {
    printData(s, output);
    return;
  }
  console.log(`rollout ${id}: ${s.status}${s.progress ? `, ${s.progress.step}` : ''}`);
  if (s.progress) console.log(countsLine(s.progress.counts) + asOf(s));
  if (s.rollout) {
    const r = s.rollout;
    console.log(
      `maxConcurrency ${r.maxConcurrency}${r.window < r.maxConcurrency ? ` (${r.window} at once: the server's limit)` : ''}, failure limit ${r.failureLimit}${r.tolerated > 0 ? ` (${r.tolerated} accepted)` : ''}, ` +
        `canary gate ${r.gate}, run ${r.run}`,
    );
  }
  const items = Object.entries(s.progress?.items ?? {});
  if (items.length > 0) {
    printTable(
      ['SITE', 'STATE', 'DETAIL'],
      items.map(([site, i]) => [site, i.state, i.detail ?? '']),
    );
  }
  if (s.failure) console.log(`failure: ${s.failure}`);
}

export async function listRollouts(api: ApiClient, output: OutputFormat): Promise<void> {
  const { items } = await api.get<{
    items: { rolloutId: string; status: string; startTime: string; closeTime?: string }[];
  }>('/v1/rollouts');
  if (output !== 'table') {
    printData(items, output);
    return;
  }
  printTable(
    ['ROLLOUT', 'STATUS', 'STARTED', 'CLOSED'],
    items.map((i) => [i.rolloutId, i.status, i.startTime, i.closeTime ?? '-']),
    'No rollouts.',
  );
}

export type RolloutAction = 'pause' | 'resume' | 'approve' | 'concurrency';

/** A change to a running rollout, validated by the rollout itself; prints what it is now. */
export async function controlRollout(
  api: ApiClient,
  id: string,
  action: RolloutAction,
  body: object,
  output: OutputFormat,
): Promise<void> {
  const view = await api.post<RolloutView>(`/v1/rollouts/${encodeURIComponent(id)}/${action}`, body);
  if (output !== 'table') {
    printData(view, output);
    return;
  }
  const state = view.paused ? `paused (${view.pauseReason ?? ''})` : 'running';
  console.log(`rollout ${id}: ${state}; maxConcurrency ${view.maxConcurrency}; canary gate ${view.gate}`);
}

export async function cancelRollout(api: ApiClient, id: string): Promise<void> {
  await api.post(`/v1/rollouts/${encodeURIComponent(id)}/cancel`, {});
  console.log(`rollout ${id}: cancel requested; running sites are cancelled and compensate`);
}

interface ScheduleOut {
  name: string;
  cron: string[];
  paused: boolean;
  note?: string;
  nextRuns: string[];
  recentRuns: { rolloutId: string; scheduledAt: string; takenAt: string }[];
}

export async function createSchedule(
  api: ApiClient,
  name: string,
  cron: string[],
  rollout: RolloutOptions,
  opts: { paused: boolean; output: OutputFormat },
): Promise<void> {
  const s = await api.post<ScheduleOut>('/v1/schedules', {
    name,
    cron,
    rollout: rolloutBody(rollout),
    paused: opts.paused,
  });
  if (opts.output !== 'table') {
    printData(s, opts.output);
    return;
  }
  console.log(`schedule/${s.name} created; next runs: ${s.nextRuns.slice(0, 3).join(', ') || 'none (paused)'}`);
}

export async function getSchedules(api: ApiClient, name: string | undefined, output: OutputFormat): Promise<void> {
  if (name) {
    const s = await api.get<ScheduleOut>(`/v1/schedules/${encodeURIComponent(name)}`);
    if (output !== 'table') {
      printData(s, output);
      return;
    }
    printTable(
      ['NAME', 'CRON', 'PAUSED', 'NEXT RUN', 'LAST ROLLOUT', 'NOTE'],
      [
        [
          s.name,
          s.cron.join(' | '),
          String(s.paused),
          s.nextRuns[0] ?? '-',
          s.recentRuns.at(-1)?.rolloutId ?? '-',
          s.note ?? '',
        ],
      ],
    );
    return;
  }
  const { items } = await api.get<{
    items: { name: string; paused: boolean; nextRun?: string; lastRun?: { rolloutId: string; takenAt: string } }[];
  }>('/v1/schedules');
  if (output !== 'table') {
    printData(items, output);
    return;
  }
  printTable(
    ['NAME', 'PAUSED', 'NEXT RUN', 'LAST ROLLOUT'],
    items.map((i) => [i.name, String(i.paused), i.nextRun ?? '-', i.lastRun?.rolloutId ?? '-']),
    'No schedules.',
  );
}

export async function scheduleAction(
  api: ApiClient,
  name: string,
  action: 'pause' | 'unpause' | 'delete' | 'trigger',
  note?: string,
): Promise<void> {
  const path = `/v1/schedules/${encodeURIComponent(name)}`;
  if (action === 'delete') await api.delete(path);
  else await api.post(`${path}/${action}`, note === undefined ? {} : { note });
  const done = {
    pause: 'paused',
    unpause: 'unpaused',
    delete: 'deleted',
    trigger: 'triggered: its rollout starts now',
  };
  console.log(`schedule/${name} ${done[action]}`);
}
