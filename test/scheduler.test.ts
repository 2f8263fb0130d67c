import { Cron } from "croner";
import { describe, expect, it } from "vitest";
import { nextRun, retryDelay, SETTLE_MS, type PlannedRun, type ScheduleInput } from "../src/daemon/scheduler.js";

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
    const tick = Date.parse("2026-11-24T02:00:00Z");
    expect(got).toEqual({ at: tick, trigger: "schedule", full: true, tick });
  });

  it("cron schedule: a retry serves the ticks that passed during the failures", () => {
    const cron = new Cron("0 * * * *", { paused: true, timezone: "UTC" });
    const got = nextRun({ ...base, now: 12 * H + 30 * M, lastRunStart: 10 * H, lastRunEnd: 10 * H + 5 * M, lastTick: 10 * H, consecutiveFailures: 2, cron: (after) => cron.nextRun(after) });
    expect(got).toEqual({ at: 12 * H + 30 * M, trigger: "retry", full: true, tick: 12 * H });
  });

  it("retry delays double from min_time_between_run (at least 1 s) up to backup_interval", () => {
    const o = { backupInterval: H, minTimeBetweenRun: 15 * M };
    expect([1, 2, 3, 4, 10].map((n) => retryDelay(n, o))).toEqual([15 * M, 30 * M, H, H, H]);
    expect([1, 2, 3].map((n) => retryDelay(n, { backupInterval: 5 * S, minTimeBetweenRun: 0 }))).toEqual([S, 2 * S, 4 * S]);
  });

  it("cron schedule: a timer that woke 1 ms late runs the tick it woke for, not the next one", () => {
    const cron = new Cron("* * * * *", { paused: true, timezone: "UTC" });
    const tick = Date.parse("2026-11-23T10:05:00Z");
    const lastRun = tick - M; // the 10:04 run
    const got = nextRun({ ...base, now: tick + 1, minTimeBetweenRun: 0, lastRunStart: lastRun, lastRunEnd: lastRun + S, lastTick: lastRun, cron: (after) => cron.nextRun(after) });
    expect(got).toEqual({ at: tick, trigger: "schedule", full: true, tick });
  });
});

// The daemon's loop (src/daemon/daemon.ts run()) against an injected clock: plan, sleep until the
// planned time (the timer wakes `skew` ms off: late, early or on time), re-plan, run, and record
// the tick the run served. Returns each run's start and served tick.
interface SimRun { start: number; tick: number | undefined; trigger: string }
function simulate(o: {
  pattern: string;
  timezone: string;
  from: string;
  until: string;
  skews: number[];
  runMs: (n: number) => number;
  minTimeBetweenRun?: number;
}): SimRun[] {
  const cron = new Cron(o.pattern, { paused: true, timezone: o.timezone });
  const until = Date.parse(o.until);
  let now = Date.parse(o.from);
  // The daemon's startup run has just ended.
  let lastRunStart = now - 10 * S;
  let lastRunEnd = now;
  let lastTick: number | undefined;
  let wakes = 0;
  const runs: SimRun[] = [];
  for (let guard = 0; guard < 100_000; guard++) {
    const plan: PlannedRun | undefined = nextRun({
      ...base, now, minTimeBetweenRun: o.minTimeBetweenRun ?? 0, lastRunStart, lastRunEnd, lastTick, cron: (after) => cron.nextRun(after),
    });
    if (!plan) return runs;
    if (plan.at > until) return runs;
    if (plan.at > now) {
      now = plan.at + o.skews[wakes++ % o.skews.length]!;
      continue;
    }
    runs.push({ start: now, tick: plan.tick, trigger: plan.trigger });
    lastRunStart = now;
    if (plan.tick !== undefined) lastTick = plan.tick;
    now += o.runMs(runs.length);
    lastRunEnd = now;
  }
  throw new Error("simulation did not end");
}

function ticks(pattern: string, timezone: string, from: string, until: string): number[] {
  const cron = new Cron(pattern, { paused: true, timezone });
  const out: number[] = [];
  for (let t = cron.nextRun(new Date(from)); t && t.getTime() <= Date.parse(until); t = cron.nextRun(t)) out.push(t.getTime());
  return out;
}

describe("cron schedule: every tick runs exactly once", () => {
  const wakes: [string, number[]][] = [
    ["on time", [0]],
    ["1 ms late", [1]],
    ["1.5 s late", [1500]],
    ["a few ms early, then on time or late", [-3, 0, -5, 1, -2, 2]],
  ];
  const schedules: [string, string, string, string][] = [
    // pattern, timezone, from, until
    ["* * * * *", "UTC", "2026-11-23T10:00:30Z", "2026-11-23T13:00:30Z"],
    ["0 2 * * *", "Europe/Berlin", "2026-03-20T12:00:00Z", "2026-04-05T12:00:00Z"], // spring forward, 29 March
    ["30 2 * * *", "Europe/Berlin", "2026-03-27T12:00:00Z", "2026-03-31T12:00:00Z"], // 02:30 does not exist on 29 March
    ["30 2 * * *", "Europe/Berlin", "2026-10-22T12:00:00Z", "2026-10-28T12:00:00Z"], // 02:30 happens twice on 25 October
    ["*/30 * * * *", "Europe/Berlin", "2026-10-24T20:10:00Z", "2026-10-25T06:00:00Z"], // the hour repeated at fall back
    ["0 2 31 * *", "Europe/Berlin", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"], // months without a 31st
    ["0 0 1 * *", "Europe/Berlin", "2026-01-01T00:00:00Z", "2027-01-01T00:00:00Z"], // month ends, across both DST changes
  ];
  for (const [pattern, timezone, from, until] of schedules) {
    for (const [wake, skews] of wakes) {
      it(`${pattern} (${timezone}, ${from.slice(0, 10)}), timer ${wake}`, () => {
        const want = ticks(pattern, timezone, from, until);
        expect(want.length).toBeGreaterThan(2);
        const runs = simulate({ pattern, timezone, from, until, skews, runMs: () => 20 * S });
        const lateBy = Math.max(0, ...skews) + Math.max(0, -Math.min(0, ...skews));
        // One run per tick, each started between its tick and the timer's worst lateness.
        expect(runs.map((r) => r.tick)).toEqual(want);
        for (const [k, r] of runs.entries()) {
          expect(r.trigger).toBe("schedule");
          expect(r.start - want[k]!).toBeGreaterThanOrEqual(0);
          expect(r.start - want[k]!).toBeLessThanOrEqual(lateBy);
        }
      });
    }
  }

  it("ticks missed while a run is still going run once afterwards, not once per missed tick", () => {
    // Hourly; the second run takes 3.5 h, so the ticks at 12:00, 13:00 and 14:00 pass while it runs.
    const runs = simulate({
      pattern: "0 * * * *", timezone: "UTC", from: "2026-11-23T09:30:00Z", until: "2026-11-23T17:30:00Z",
      skews: [1], runMs: (n) => (n === 2 ? 3.5 * H : M),
    });
    const at = (s: string) => Date.parse(`2026-11-23T${s}Z`);
    expect(runs.map((r) => [new Date(r.start).toISOString(), r.tick === undefined ? undefined : new Date(r.tick).toISOString()])).toEqual([
      ["10:00:00.001", "10:00:00.000"],
      ["11:00:00.001", "11:00:00.000"],
      // 11:00 run ended at 14:30: the missed 12:00, 13:00 and 14:00 ticks make one run, right away.
      ["14:30:00.001", "14:00:00.000"],
      ["15:00:00.001", "15:00:00.000"],
      ["16:00:00.001", "16:00:00.000"],
      ["17:00:00.001", "17:00:00.000"],
    ].map(([s, t]) => [new Date(at(s!)).toISOString(), new Date(at(t!)).toISOString()]));
  });

  it("min_time_between_run delays a tick; the ticks passed meanwhile make one run", () => {
    const runs = simulate({
      pattern: "*/5 * * * *", timezone: "UTC", from: "2026-11-23T10:01:00Z", until: "2026-11-23T10:59:00Z",
      skews: [1], runMs: () => M, minTimeBetweenRun: 12 * M,
    });
    // The startup run ended at 10:01 and every run takes 1 min, so runs may start at 10:13, then
    // 12 min after each end: each serves the newest tick passed by then, the older ones are folded in.
    expect(runs.map((r) => new Date(r.start).toISOString().slice(11, 16))).toEqual(["10:13", "10:26", "10:39", "10:52"]);
    expect(runs.map((r) => new Date(r.tick!).toISOString().slice(11, 16))).toEqual(["10:10", "10:25", "10:35", "10:50"]);
  });
});
