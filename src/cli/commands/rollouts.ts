import type { ApiClient } from '../api-client.ts';
import { type OutputFormat, printData, printTable } from '../output.ts';
import { follow } from './operations.ts';

export interface RolloutOptions {
  selector: Record<string, string>;
  operation: 'install' | 'patch' | 'upgrade';
  profile?: { name: string; version: string };
  kubernetesVersion?: string;
  maxConcurrency?: number;
  canary?: string[];
  maxFailures?: number;
  onFailureLimit?: 'stop' | 'pause';
}

/** The rollout request body the API validates (and names each wrong field of). */
export function rolloutBody(o: RolloutOptions): object {
  return {
    selector: { matchLabels: o.selector },
    operation: o.operation,
    ...(o.profile && { profile: o.profile }),
    ...(o.kubernetesVersion && { kubernetesVersion: o.kubernetesVersion }),
    strategy: {
      ...(o.maxConcurrency !== undefined && { maxConcurrency: o.maxConcurrency }),
      ...(o.canary && { canarySites: o.canary }),
      ...(o.maxFailures !== undefined && { maxFailures: o.maxFailures }),
      ...(o.onFailureLimit && { onFailureLimit: o.onFailureLimit }),
    },
  };
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
  return follow(api, `/v1/rollouts/${started.rolloutId}`, opts);
}

export async function rolloutAction(api: ApiClient, id: string, action: 'pause' | 'resume' | 'cancel'): Promise<void> {
  await api.post(`/v1/rollouts/${encodeURIComponent(id)}/${action}`, {});
  console.log(`rollout ${id}: ${action} requested`);
}

interface ScheduleOut {
  name: string;
  cron: string[];
  paused: boolean;
  note?: string;
  nextRuns: string[];
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
      ['NAME', 'CRON', 'PAUSED', 'NEXT RUN', 'NOTE'],
      [[s.name, s.cron.join(' | '), String(s.paused), s.nextRuns[0] ?? '-', s.note ?? '']],
    );
    return;
  }
  const { items } = await api.get<{ items: { name: string; paused?: boolean }[] }>('/v1/schedules');
  if (output !== 'table') {
    printData(items, output);
    return;
  }
  printTable(
    ['NAME', 'PAUSED'],
    items.map((i) => [i.name, String(i.paused ?? false)]),
    'No schedules.',
  );
}

export async function scheduleAction(
  api: ApiClient,
  name: string,
  action: 'pause' | 'unpause' | 'delete',
  note?: string,
): Promise<void> {
  if (action === 'delete') await api.delete(`/v1/schedules/${encodeURIComponent(name)}`);
  else await api.post(`/v1/schedules/${encodeURIComponent(name)}/${action}`, note === undefined ? {} : { note });
  console.log(`schedule/${name} ${action === 'delete' ? 'deleted' : `${action}d`}`);
}
