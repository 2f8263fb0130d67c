import type { RunTrigger } from "./state.js";

// When the daemon runs next, as a pure function of the clock and what happened so far.
//
// - The first run after start is a full scan.
// - After a failure, retry with exponential backoff: min_time_between_run (at least 1 s)
//   doubling per consecutive failure, capped at max(backup_interval, that base).
// - With `schedule` (cron), run at each tick, always as a full scan.
// - Otherwise: when something is dirty, run once backup_interval has passed since the last
//   start and the changes have settled for half a second; a full scan every full_scan_interval whatever the watcher says; never sooner than
//   min_time_between_run after the last run ended.

export interface ScheduleInput {
  now: number;
  backupInterval: number;
  fullScanInterval: number;
  minTimeBetweenRun: number;
  /** Next tick strictly after the given time, for cron schedules. */
  cron?: (after: Date) => Date | null;
  lastRunStart?: number;
  lastRunEnd?: number;
  lastFullScan?: number;
  dirty: boolean;
  /** When the newest dirty event arrived: runs wait for a short quiet spell after it. */
  lastDirtyAt?: number;
  consecutiveFailures: number;
}

/** Quiet time after the last change before a watch-triggered run (one save is often several events). */
export const SETTLE_MS = 500;

export interface PlannedRun {
  at: number;
  trigger: RunTrigger;
  /** Walk everything instead of trusting the catalog outside dirty paths. */
  full: boolean;
}

export function retryDelay(failures: number, input: Pick<ScheduleInput, "backupInterval" | "minTimeBetweenRun">): number {
  const base = Math.max(1000, input.minTimeBetweenRun);
  const cap = Math.max(input.backupInterval, base);
  return Math.min(cap, base * 2 ** Math.min(30, Math.max(0, failures - 1)));
}

export function nextRun(i: ScheduleInput): PlannedRun | undefined {
  if (i.lastRunEnd === undefined || i.lastRunStart === undefined) return { at: i.now, trigger: "startup", full: true };
  const earliest = i.lastRunEnd + i.minTimeBetweenRun;
  if (i.consecutiveFailures > 0) {
    return { at: Math.max(i.now, i.lastRunEnd + retryDelay(i.consecutiveFailures, i)), trigger: "retry", full: true };
  }
  if (i.cron) {
    const tick = i.cron(new Date(Math.max(i.lastRunStart, i.now - 1)));
    return tick ? { at: Math.max(tick.getTime(), earliest), trigger: "schedule", full: true } : undefined;
  }
  const fullAt = (i.lastFullScan ?? i.lastRunStart) + i.fullScanInterval;
  const dirtyAt = i.dirty ? Math.max(i.lastRunStart + i.backupInterval, (i.lastDirtyAt ?? 0) + SETTLE_MS) : Infinity;
  const at = Math.max(Math.min(fullAt, dirtyAt), earliest);
  return fullAt <= dirtyAt ? { at, trigger: "full-scan", full: true } : { at, trigger: "watch", full: false };
}
