import { stringify } from 'yaml';

export type OutputFormat = 'table' | 'json' | 'yaml';

export function isOutputFormat(value: string): value is OutputFormat {
  return value === 'table' || value === 'json' || value === 'yaml';
}

/** Machine-readable output: what the API returned, as JSON or YAML. */
export function printData(data: unknown, format: 'json' | 'yaml'): void {
  if (format === 'json') console.log(JSON.stringify(data, null, 2));
  else process.stdout.write(stringify(data));
}

/** kubectl-style columns: upper-case headers, left-aligned, three spaces apart; `none` when there are no rows. */
export function printTable(headers: string[], rows: string[][], none = 'No resources found.'): void {
  if (rows.length === 0) {
    console.log(none);
    return;
  }
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('   ')
      .trimEnd();
  console.log(line(headers));
  for (const row of rows) console.log(line(row));
}

/** How long ago, in the largest whole unit: 5s, 3m, 2h, 4d. */
export function age(timestamp: string | undefined, now = Date.now()): string {
  if (timestamp === undefined) return '-';
  const seconds = Math.max(0, Math.floor((now - Date.parse(timestamp)) / 1000));
  if (Number.isNaN(seconds)) return '-';
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 172_800) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86_400)}d`;
}

export function bytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${value.toFixed(1)} ${units[unit] ?? ''}`;
}

export const labelsText = (labels: Record<string, string> | undefined) =>
  Object.entries(labels ?? {})
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k}=${v}`)
    .join(',') || '<none>';
