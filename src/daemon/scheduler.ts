import type { RunTrigger } from "./state.js";

// When the daemon runs next, as a pure function of the clock and what happened so far.
//
// - The first run after start is a full scan.
// - After a failure, retry with exponential backoff: min_time_between_run (at least 1 s)
//   doubling per consecutive failure, capped at max(backup_interval, that base).
// - With `schedule` (cron), run once per tick, always as a full scan. The next tick is the first
//   one strictly after the last tick served (not after "now": a timer that wakes 1 ms late would
//   then skip the tick it woke for). Ticks that passed while a run was going, or while the host
//   slept, make one run, which serves the newest of them.
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
  /** The cron tick the last scheduled run served; before any, ticks up to lastRunStart count as served. */
  lastTick?: number;
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
  /** With a cron schedule: the tick this run serves; the caller records it as lastTick when it starts the run. */
  tick?: number;
}

export function retryDelay(failures: number, input: Pick<ScheduleInput, "backupInterval" | "minTimeBetweenRun">): number {
  const base = Math.max(1000, input.minTimeBetweenRun);
  const cap = Math.max(input.backupInterval, base);
  return Math.min(cap, base * 2 ** Math.min(30, Math.max(0, failures - 1)));
}

export function nextRun(i: ScheduleInput): PlannedRun | undefined {
  if (i.lastRunEnd === undefined || i.lastRunStart === undefined) return { at: i.now, trigger: "startup", full: true };
  const earliest = i.lastRunEnd + i.minTimeBetweenRun;
  const due = i.cron ? dueTick(i.cron, i.lastTick ?? i.lastRunStart, i.now) : undefined;
  if (i.consecutiveFailures > 0) {
    // A retry is a full backup like a scheduled one, so it serves the ticks that passed meanwhile.
    const at = Math.max(i.now, i.lastRunEnd + retryDelay(i.consecutiveFailures, i));
    return due === undefined ? { at, trigger: "retry", full: true } : { at, trigger: "retry", full: true, tick: due };
  }
  if (i.cron) {
    const tick = due ?? i.cron(new Date(i.lastTick ?? i.lastRunStart))?.getTime();
    return tick === undefined ? undefined : { at: Math.max(tick, earliest), trigger: "schedule", full: true, tick };
  }
  const fullAt = (i.lastFullScan ?? i.lastRunStart) + i.fullScanInterval;
  const dirtyAt = i.dirty ? Math.max(i.lastRunStart + i.backupInterval, (i.lastDirtyAt ?? 0) + SETTLE_MS) : Infinity;
  const at = Math.max(Math.min(fullAt, dirtyAt), earliest);
  return fullAt <= dirtyAt ? { at, trigger: "full-scan", full: true } : { at, trigger: "watch", full: false };
}

/** The newest tick in (after, now], or undefined when none has come yet. */
function dueTick(cron: (after: Date) => Date | null, after: number, now: number): number | undefined {
  let due: number | undefined;
  for (let t = cron(new Date(after)); t !== null && t.getTime() <= now; t = cron(t)) due = t.getTime();
  return due;
}
