import { Cron } from "croner";
import { describe, expect, it } from "vitest";
import { nextRun, retryDelay, SETTLE_MS, type ScheduleInput } from "../src/daemon/scheduler.js";

const S = 1000;
const M = 60 * S;
const H = 60 * M;
const base: ScheduleInput = {
  now: 10 * H,
  backupInterval: H,
  fullScanInterval: 24 * H,
  minTimeBetweenRun: 15 * M,
  lastRunStart: 9 * H,
  lastRunEnd: 9 * H + 5 * M,
  lastFullScan: 9 * H,
  dirty: false,
  consecutiveFailures: 0,
};

describe("daemon scheduler", () => {
  const cases: [string, Partial<ScheduleInput>, ReturnType<typeof nextRun>][] = [
    ["first run after start: a full scan, now", { lastRunStart: undefined, lastRunEnd: undefined }, { at: 10 * H, trigger: "startup", full: true }],
    ["nothing dirty: only the next full scan", {}, { at: 33 * H, trigger: "full-scan", full: true }],
    ["dirty: one backup_interval after the last start", { dirty: true, now: 9 * H + 10 * M, lastDirtyAt: 9 * H + 10 * M }, { at: 10 * H, trigger: "watch", full: false }],
    ["dirty long after: right away, once changes settle", { dirty: true, now: 12 * H, lastDirtyAt: 12 * H }, { at: 12 * H + SETTLE_MS, trigger: "watch", full: false }],
    ["never sooner than min_time_between_run after the last end", { dirty: true, backupInterval: M, lastDirtyAt: 9 * H }, { at: 9 * H + 20 * M, trigger: "watch", full: false }],
    ["full scan due wins over a later dirty run", { dirty: true, fullScanInterval: 30 * M, lastDirtyAt: 9 * H }, { at: 9 * H + 30 * M, trigger: "full-scan", full: true }],
    ["after a failure: retry after min_time_between_run", { consecutiveFailures: 1 }, { at: 10 * H, trigger: "retry", full: true }],
    ["after three failures: backoff doubles, capped at backup_interval", { consecutiveFailures: 3, now: 9 * H + 6 * M }, { at: 9 * H + 5 * M + H, trigger: "retry", full: true }],
  ];
  for (const [name, input, want] of cases) {
    it(name, () => expect(nextRun({ ...base, ...input })).toEqual(want));
  }

  it("cron schedule: the next tick, as a full backup", () => {
    const cron = new Cron("0 2 * * *", { paused: true, timezone: "UTC" });
    const now = Date.parse("2026-11-23T10:00:00Z");
    const got = nextRun({ ...base, now, lastRunStart: now - H, lastRunEnd: now - H + M, cron: (after) => cron.nextRun(after) });
    expect(got).toEqual({ at: Date.parse("2026-11-24T02:00:00Z"), trigger: "schedule", full: true });
  });

  it("retry delays double from min_time_between_run (at least 1 s) up to backup_interval", () => {
    const o = { backupInterval: H, minTimeBetweenRun: 15 * M };
    expect([1, 2, 3, 4, 10].map((n) => retryDelay(n, o))).toEqual([15 * M, 30 * M, H, H, H]);
    expect([1, 2, 3].map((n) => retryDelay(n, { backupInterval: 5 * S, minTimeBetweenRun: 0 }))).toEqual([S, 2 * S, 4 * S]);
  });
});
