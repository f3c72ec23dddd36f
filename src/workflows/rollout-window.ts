/**
 * Pure helpers of the fleet rollout: maintenance windows in a site's own time zone, and the failure budget. No I/O and
 * no clock of their own: the workflow passes its deterministic time in.
 */
import type { FailureBudget, MaintenanceWindow } from '../domain/operations.ts';

const minutesPerDay = 24 * 60;

// One formatter per zone: building one costs far more than formatting, and a rollout asks for the same few zones
// at every decision.
const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-GB', { timeZone, hour: '2-digit', minute: '2-digit', hourCycle: 'h23' });
    formatters.set(timeZone, f);
  }
  return f;
}

/** Minutes since local midnight at `instant` in `timeZone`, as a wall clock there reads. */
export function localMinutes(instant: Date, timeZone: string): number {
  let hour = 0;
  let minute = 0;
  for (const part of formatter(timeZone).formatToParts(instant)) {
    if (part.type === 'hour') hour = Number(part.value) % 24;
    if (part.type === 'minute') minute = Number(part.value);
  }
  return hour * 60 + minute;
}

function parseHhmm(hhmm: string): number {
  const [h = '0', m = '0'] = hhmm.split(':');
  return Number(h) * 60 + Number(m);
}

/**
 * Minutes until the window opens at local time `minutes`, 0 when it is open. A window whose end is before its start
 * spans midnight (22:00–04:00). Across a daylight-saving change the figure can be an hour off: callers wake up at it
 * and ask again, so they are late by at most that, never early.
 */
export function minutesUntilOpen(window: MaintenanceWindow, minutes: number): number {
  const start = parseHhmm(window.start);
  const end = parseHhmm(window.end);
  const open = start < end ? minutes >= start && minutes < end : minutes >= start || minutes < end;
  if (open) return 0;
  return (start - minutes + minutesPerDay) % minutesPerDay;
}

/**
 * Milliseconds until the window opens for a site in `timeZone` at `instant`, 0 when it is open (or there is no window).
 * Rounded up to the next whole minute, since the wall clock is read to the minute.
 */
export function msUntilWindow(window: MaintenanceWindow | undefined, timeZone: string, instant: Date): number {
  if (!window) return 0;
  const minutes = minutesUntilOpen(window, localMinutes(instant, timeZone));
  if (minutes === 0) return 0;
  const intoMinute = instant.getTime() % 60_000;
  return minutes * 60_000 - intoMinute;
}

/** maxFailures as a count of sites: a share is of the sites selected, rounded down. */
export function failureLimit(budget: FailureBudget, total: number): number {
  if (typeof budget === 'number') return budget;
  return Math.floor((total * Number(budget.slice(0, -1))) / 100);
}
