import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RetentionPolicy } from "../src/prune/policy.js";
import {
  EMPTY_POLICY_REASON,
  FUTURE_REASON,
  applyRetention,
  describePolicy,
  isEmptyPolicy,
  type SnapshotRef,
} from "../src/prune/retention.js";

// Every expected list below was worked out by hand from the calendar, not by running a second
// implementation of the rules. The helpers only build input series and name ids in a range.

const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;

/** A snapshot whose id is "<host>@<time>" unless given, so expected lists read as dates. */
function snap(host: string, time: string, id = `${host}@${time}`): SnapshotRef {
  return { id, host, time: new Date(`${time}Z`) };
}

/** UTC "YYYY-MM-DD" of each day from `from` back to `to`, both included, newest first. */
function daysDesc(from: string, to: string): string[] {
  const out: string[] = [];
  for (let t = Date.parse(`${from}T00:00Z`); t >= Date.parse(`${to}T00:00Z`); t -= DAY) {
    out.push(new Date(t).toISOString().slice(0, 10));
  }
  return out;
}

/** "YYYY-MM" of each month from `from` back to `to`, both included, newest first. */
function monthsDesc(from: string, to: string): string[] {
  const out: string[] = [];
  let [y, m] = from.split("-").map(Number) as [number, number];
  for (;;) {
    const label = `${y}-${String(m).padStart(2, "0")}`;
    out.push(label);
    if (label === to) return out;
    if (--m === 0) [y, m] = [y - 1, 12];
  }
}

// Host "a", one snapshot per hour, 2026-11-18T00:00 … 2026-11-20T23:00 (72).
const hourly = daysDesc("2026-11-20", "2026-11-18").flatMap((d) =>
  Array.from({ length: 24 }, (_, h) => snap("a", `${d}T${String(23 - h).padStart(2, "0")}:00`)),
);
const h = (dayAndHour: string): string => `a@2026-11-${dayAndHour}:00`; // h("20T23")

// Host "a", one snapshot a day at 03:00, 2026-09-21 … 2026-11-20 (61 days, two months).
const daily = daysDesc("2026-11-20", "2026-09-21").map((d) => snap("a", `${d}T03:00`));
const d = (day: string): string => `a@${day}T03:00`; // d("2026-11-20")

// Host "a", one snapshot a month on the 15th at 06:00, 2023-12 … 2026-11 (36, three years).
const monthly = monthsDesc("2026-11", "2023-12").map((m) => snap("a", `${m}-15T06:00`));
const mo = (month: string): string => `a@${month}-15T06:00`; // mo("2026-11")

// Three hosts interleaved: alpha daily at 01:00, beta daily at 02:00, gamma two old snapshots.
const hosts = [
  ...daysDesc("2026-11-20", "2026-11-11").map((x) => snap("alpha", `${x}T01:00`)),
  ...daysDesc("2026-11-20", "2026-11-16").map((x) => snap("beta", `${x}T02:00`)),
  snap("gamma", "2026-10-01T09:00"),
  snap("gamma", "2026-09-01T09:00"),
];

// Several snapshots inside one day; the newest of each day must be the one a bucket keeps.
const crowded = [
  snap("a", "2026-11-20T10:00"),
  snap("a", "2026-11-20T08:00"),
  snap("a", "2026-11-20T01:00"),
  snap("a", "2026-11-19T22:00"),
  snap("a", "2026-11-19T05:00"),
  snap("a", "2026-11-18T12:00"),
];

// Equal times: order by id descending.
const ties = [
  snap("a", "2026-11-20T03:00", "x1"),
  snap("a", "2026-11-20T03:00", "x3"),
  snap("a", "2026-11-20T03:00", "x2"),
  snap("a", "2026-11-19T03:00", "y1"),
];

// A week of real dailies plus one fake dated in 2030, and two snapshots near the skew limit.
const withFuture = [
  ...daysDesc("2026-11-20", "2026-11-14").map((x) => snap("a", `${x}T03:00`)),
  snap("a", "2030-01-01T00:00", "evil"),
];
const skew = [
  snap("a", "2026-11-20T13:00:00.000", "at-limit"), // now + 1h exactly: still counted
  snap("a", "2026-11-20T13:00:00.001", "past-limit"), // now + 1h + 1ms: future-dated
  snap("a", "2026-11-20T03:00", "real"),
];

// ISO weeks across New Year: 2026-12-28 (Mon) … 2027-01-03 (Sun) is 2026-W53.
const newYear = [
  snap("a", "2027-01-02T12:00"), // Sat, 2026-W53
  snap("a", "2027-01-01T12:00"), // Fri, 2026-W53
  snap("a", "2026-12-31T12:00"), // Thu, 2026-W53
  snap("a", "2026-12-27T12:00"), // Sun, 2026-W52
];

// Around UTC midnight: 00:30 and 23:30 share a UTC day but not a day in most local zones.
const midnight = [
  snap("a", "2026-11-20T23:30"),
  snap("a", "2026-11-20T00:30"),
  snap("a", "2026-11-19T12:00"),
];

// Compromise: 40 real dailies, then 100 fakes uploaded during the last minute before `now`.
const NOW = new Date("2026-11-20T12:00Z");
const real = daysDesc("2026-11-20", "2026-10-12").map((x) => snap("a", `${x}T03:00`));
const fakeIds = Array.from({ length: 100 }, (_, i) => `fake-${String(99 - i).padStart(3, "0")}`);
const fakes = fakeIds.map((id, i) => ({
  id,
  host: "a",
  time: new Date(NOW.getTime() - 10_500 - i * 500), // fake-099 at 11:59:49.5, fake-000 at 11:59:00
}));
const futureFakes = fakeIds.map((id, i) => ({ id, host: "a", time: new Date(Date.UTC(2027, 0, 1) - i) }));
const r = (day: string): string => `a@${day}T03:00`;

interface Case {
  name: string;
  snapshots: readonly SnapshotRef[];
  policy: RetentionPolicy;
  now: string;
  keep: string[];
  /** Reasons to check for some kept ids. */
  reasons?: Record<string, string[]>;
}

const cases: Case[] = [
  // Hourly series, now just after the last snapshot.
  { name: "hourly: keep-last 3", snapshots: hourly, policy: { keepLast: 3 }, now: "2026-11-21T00:30", keep: [h("20T23"), h("20T22"), h("20T21")], reasons: { [h("20T21")]: ["last 3/3"] } },
  { name: "hourly: keep-hourly 5", snapshots: hourly, policy: { keepHourly: 5 }, now: "2026-11-21T00:30", keep: [h("20T23"), h("20T22"), h("20T21"), h("20T20"), h("20T19")], reasons: { [h("20T19")]: ["hourly 2026-11-20 19:00"] } },
  { name: "hourly: keep-daily 3 keeps the newest of each day", snapshots: hourly, policy: { keepDaily: 3 }, now: "2026-11-21T00:30", keep: [h("20T23"), h("19T23"), h("18T23")] },
  { name: "hourly: keep-daily 5 with only 3 days", snapshots: hourly, policy: { keepDaily: 5 }, now: "2026-11-21T00:30", keep: [h("20T23"), h("19T23"), h("18T23")] },
  { name: "hourly: keep-weekly 2, all in one ISO week", snapshots: hourly, policy: { keepWeekly: 2 }, now: "2026-11-21T00:30", keep: [h("20T23")], reasons: { [h("20T23")]: ["weekly 2026-W47"] } },
  { name: "hourly: keep-hourly 2 + keep-daily 2", snapshots: hourly, policy: { keepHourly: 2, keepDaily: 2 }, now: "2026-11-21T00:30", keep: [h("20T23"), h("20T22"), h("19T23")], reasons: { [h("20T23")]: ["hourly 2026-11-20 23:00", "daily 2026-11-20"] } },
  { name: "hourly: keep-within 6h", snapshots: hourly, policy: { keepWithin: 6 * HOUR }, now: "2026-11-21T00:30", keep: [h("20T23"), h("20T22"), h("20T21"), h("20T20"), h("20T19")], reasons: { [h("20T19")]: ["within 6h"] } },
  { name: "hourly: keep-within boundary is inclusive", snapshots: hourly, policy: { keepWithin: 6 * HOUR }, now: "2026-11-21T00:00", keep: [h("20T23"), h("20T22"), h("20T21"), h("20T20"), h("20T19"), h("20T18")] },

  // Daily series over two months, now at noon on the last day.
  { name: "daily: keep-daily 7", snapshots: daily, policy: { keepDaily: 7 }, now: "2026-11-20T12:00", keep: daysDesc("2026-11-20", "2026-11-14").map(d) },
  // 2026-11-20 is a Friday in W47 (Mon 16 … Sun 22); W46 ends Sun 15, W45 Sun 8, W44 Sun 1.
  { name: "daily: keep-weekly 4", snapshots: daily, policy: { keepWeekly: 4 }, now: "2026-11-20T12:00", keep: [d("2026-11-20"), d("2026-11-15"), d("2026-11-08"), d("2026-11-01")], reasons: { [d("2026-11-01")]: ["weekly 2026-W44"] } },
  { name: "daily: keep-monthly 3", snapshots: daily, policy: { keepMonthly: 3 }, now: "2026-11-20T12:00", keep: [d("2026-11-20"), d("2026-10-31"), d("2026-09-30")], reasons: { [d("2026-09-30")]: ["monthly 2026-09"] } },
  { name: "daily: keep-monthly 6 with only 3 months", snapshots: daily, policy: { keepMonthly: 6 }, now: "2026-11-20T12:00", keep: [d("2026-11-20"), d("2026-10-31"), d("2026-09-30")] },
  { name: "daily: keep-yearly 1", snapshots: daily, policy: { keepYearly: 1 }, now: "2026-11-20T12:00", keep: [d("2026-11-20")], reasons: { [d("2026-11-20")]: ["yearly 2026"] } },
  // now − 30d = 2026-10-21T12:00, so 10-21 at 03:00 is just outside.
  { name: "daily: keep-within 30d", snapshots: daily, policy: { keepWithin: 30 * DAY }, now: "2026-11-20T12:00", keep: daysDesc("2026-11-20", "2026-10-22").map(d) },
  {
    name: "daily: keep-last 2, daily 5, weekly 3, monthly 2 combined",
    snapshots: daily,
    policy: { keepLast: 2, keepDaily: 5, keepWeekly: 3, keepMonthly: 2 },
    now: "2026-11-20T12:00",
    keep: [d("2026-11-20"), d("2026-11-19"), d("2026-11-18"), d("2026-11-17"), d("2026-11-16"), d("2026-11-15"), d("2026-11-08"), d("2026-10-31")],
    reasons: {
      [d("2026-11-20")]: ["last 1/2", "daily 2026-11-20", "weekly 2026-W47", "monthly 2026-11"],
      [d("2026-11-19")]: ["last 2/2", "daily 2026-11-19"],
      [d("2026-11-15")]: ["weekly 2026-W46"],
      [d("2026-10-31")]: ["monthly 2026-10"],
    },
  },

  // Monthly series over three years.
  { name: "monthly: keep-monthly 12", snapshots: monthly, policy: { keepMonthly: 12 }, now: "2026-11-20T12:00", keep: monthsDesc("2026-11", "2025-12").map(mo) },
  { name: "monthly: keep-yearly 3", snapshots: monthly, policy: { keepYearly: 3 }, now: "2026-11-20T12:00", keep: [mo("2026-11"), mo("2025-12"), mo("2024-12")] },
  { name: "monthly: keep-yearly 10 with only 4 years", snapshots: monthly, policy: { keepYearly: 10 }, now: "2026-11-20T12:00", keep: [mo("2026-11"), mo("2025-12"), mo("2024-12"), mo("2023-12")], reasons: { [mo("2023-12")]: ["yearly 2023"] } },
  { name: "monthly: keep-weekly 2", snapshots: monthly, policy: { keepWeekly: 2 }, now: "2026-11-20T12:00", keep: [mo("2026-11"), mo("2026-10")] },
  { name: "monthly: keep-daily 3", snapshots: monthly, policy: { keepDaily: 3 }, now: "2026-11-20T12:00", keep: [mo("2026-11"), mo("2026-10"), mo("2026-09")] },
  { name: "monthly: keep-hourly 1", snapshots: monthly, policy: { keepHourly: 1 }, now: "2026-11-20T12:00", keep: [mo("2026-11")] },
  { name: "monthly: keep-monthly 2 + keep-yearly 2", snapshots: monthly, policy: { keepMonthly: 2, keepYearly: 2 }, now: "2026-11-20T12:00", keep: [mo("2026-11"), mo("2026-10"), mo("2025-12")] },

  // ISO week-years: Thursday 2026-12-31 and Friday 2027-01-01 share a week.
  { name: "new year: keep-weekly 2 uses ISO week-years", snapshots: newYear, policy: { keepWeekly: 2 }, now: "2027-01-03T00:00", keep: ["a@2027-01-02T12:00", "a@2026-12-27T12:00"], reasons: { "a@2027-01-02T12:00": ["weekly 2026-W53"], "a@2026-12-27T12:00": ["weekly 2026-W52"] } },
  { name: "new year: keep-yearly 2 uses calendar years", snapshots: newYear, policy: { keepYearly: 2 }, now: "2027-01-03T00:00", keep: ["a@2027-01-02T12:00", "a@2026-12-31T12:00"] },

  // Periods are UTC days and hours, whatever the machine's zone (re-run below in two zones).
  { name: "midnight: keep-daily 2 uses UTC days", snapshots: midnight, policy: { keepDaily: 2 }, now: "2026-11-21T00:00", keep: ["a@2026-11-20T23:30", "a@2026-11-19T12:00"] },
  { name: "midnight: keep-hourly 3 uses UTC hours", snapshots: midnight, policy: { keepHourly: 3 }, now: "2026-11-21T00:00", keep: ["a@2026-11-20T23:30", "a@2026-11-20T00:30", "a@2026-11-19T12:00"], reasons: { "a@2026-11-20T00:30": ["hourly 2026-11-20 00:00"] } },

  // Several hosts: each host has its own counts; output is newest first across hosts.
  { name: "hosts: keep-last 3 per host", snapshots: hosts, policy: { keepLast: 3 }, now: "2026-11-20T12:00", keep: ["beta@2026-11-20T02:00", "alpha@2026-11-20T01:00", "beta@2026-11-19T02:00", "alpha@2026-11-19T01:00", "beta@2026-11-18T02:00", "alpha@2026-11-18T01:00", "gamma@2026-10-01T09:00", "gamma@2026-09-01T09:00"] },
  { name: "hosts: keep-daily 2 + keep-monthly 2", snapshots: hosts, policy: { keepDaily: 2, keepMonthly: 2 }, now: "2026-11-20T12:00", keep: ["beta@2026-11-20T02:00", "alpha@2026-11-20T01:00", "beta@2026-11-19T02:00", "alpha@2026-11-19T01:00", "gamma@2026-10-01T09:00", "gamma@2026-09-01T09:00"] },
  { name: "hosts: keep-within 3d", snapshots: hosts, policy: { keepWithin: 3 * DAY }, now: "2026-11-20T12:00", keep: ["beta@2026-11-20T02:00", "alpha@2026-11-20T01:00", "beta@2026-11-19T02:00", "alpha@2026-11-19T01:00", "beta@2026-11-18T02:00", "alpha@2026-11-18T01:00"] },

  // Duplicates in one period.
  { name: "crowded: keep-daily 2 keeps each day's newest", snapshots: crowded, policy: { keepDaily: 2 }, now: "2026-11-20T12:00", keep: ["a@2026-11-20T10:00", "a@2026-11-19T22:00"] },
  { name: "crowded: keep-daily 3", snapshots: crowded, policy: { keepDaily: 3 }, now: "2026-11-20T12:00", keep: ["a@2026-11-20T10:00", "a@2026-11-19T22:00", "a@2026-11-18T12:00"] },
  { name: "crowded: keep-last 2 + keep-daily 2", snapshots: crowded, policy: { keepLast: 2, keepDaily: 2 }, now: "2026-11-20T12:00", keep: ["a@2026-11-20T10:00", "a@2026-11-20T08:00", "a@2026-11-19T22:00"] },

  // Ties on time: id descending.
  { name: "ties: keep-last 1 picks the greatest id", snapshots: ties, policy: { keepLast: 1 }, now: "2026-11-20T12:00", keep: ["x3"] },
  { name: "ties: keep-last 2", snapshots: ties, policy: { keepLast: 2 }, now: "2026-11-20T12:00", keep: ["x3", "x2"] },
  { name: "ties: keep-daily 2", snapshots: ties, policy: { keepDaily: 2 }, now: "2026-11-20T12:00", keep: ["x3", "y1"] },

  // Future-dated fake: always kept, never counted.
  { name: "future: keep-last 3 still keeps 3 real", snapshots: withFuture, policy: { keepLast: 3 }, now: "2026-11-20T12:00", keep: ["evil", d("2026-11-20"), d("2026-11-19"), d("2026-11-18")], reasons: { evil: [FUTURE_REASON] } },
  { name: "future: keep-daily 2", snapshots: withFuture, policy: { keepDaily: 2 }, now: "2026-11-20T12:00", keep: ["evil", d("2026-11-20"), d("2026-11-19")], reasons: { evil: [FUTURE_REASON] } },
  { name: "future: keep-within 2d does not count the fake either", snapshots: withFuture, policy: { keepWithin: 2 * DAY }, now: "2026-11-20T12:00", keep: ["evil", d("2026-11-20"), d("2026-11-19")], reasons: { evil: [FUTURE_REASON] } },
  { name: "future: one hour of clock skew is tolerated", snapshots: skew, policy: { keepLast: 1 }, now: "2026-11-20T12:00", keep: ["past-limit", "at-limit"], reasons: { "past-limit": [FUTURE_REASON], "at-limit": ["last 1/1"] } },

  // Empty policy keeps everything; zeros mean "not set".
  { name: "empty policy keeps everything", snapshots: crowded, policy: {}, now: "2026-11-20T12:00", keep: crowded.map((s) => s.id), reasons: { "a@2026-11-18T12:00": [EMPTY_POLICY_REASON] } },
  { name: "all-zero policy is empty", snapshots: withFuture, policy: { keepLast: 0, keepDaily: 0, keepWithin: 0 }, now: "2026-11-20T12:00", keep: ["evil", ...daysDesc("2026-11-20", "2026-11-14").map(d)] },
  { name: "zero next to a set rule is ignored", snapshots: crowded, policy: { keepLast: 0, keepDaily: 1 }, now: "2026-11-20T12:00", keep: ["a@2026-11-20T10:00"] },
  { name: "no snapshots", snapshots: [], policy: { keepLast: 3 }, now: "2026-11-20T12:00", keep: [] },

  // Compromise: 100 fakes in the last minute. keep-last alone loses every real snapshot; this
  // case documents that risk rather than endorsing it.
  { name: "compromise: keep-last 7 alone keeps only fakes", snapshots: [...real, ...fakes], policy: { keepLast: 7 }, now: "2026-11-20T12:00", keep: fakeIds.slice(0, 7) },
  // Today's real snapshot shares its day with the fakes, which are newer; the other 6 days survive.
  { name: "compromise: keep-daily 7 alone keeps 6 real days", snapshots: [...real, ...fakes], policy: { keepDaily: 7 }, now: "2026-11-20T12:00", keep: ["fake-099", ...daysDesc("2026-11-19", "2026-11-14").map(r)] },
  { name: "compromise: keep-daily 7 + keep-within 30d keeps the real month", snapshots: [...real, ...fakes], policy: { keepDaily: 7, keepWithin: 30 * DAY }, now: "2026-11-20T12:00", keep: [...fakeIds, ...daysDesc("2026-11-20", "2026-10-22").map(r)], reasons: { [r("2026-11-20")]: ["within 30d"], [r("2026-11-19")]: ["daily 2026-11-19", "within 30d"] } },
  { name: "compromise: future-dated fakes cannot push out keep-last 7", snapshots: [...real, ...futureFakes], policy: { keepLast: 7 }, now: "2026-11-20T12:00", keep: [...fakeIds, ...daysDesc("2026-11-20", "2026-11-14").map(r)] },
];

/** Deterministic shuffle (xorshift32) so "input order does not matter" is tested, reproducibly. */
function shuffled<T>(items: readonly T[], seed: number): T[] {
  const out = [...items];
  let x = seed;
  for (let i = out.length - 1; i > 0; i--) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    const j = x % (i + 1);
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

const ids = (list: readonly SnapshotRef[]): string[] => list.map((s) => s.id);

function check(c: Case): void {
  const now = new Date(`${c.now}Z`);
  const result = applyRetention(c.snapshots, c.policy, now);

  expect(ids(result.keep), c.name).toEqual(c.keep);

  // keep ∪ remove is exactly the input, with no overlap.
  const kept = new Set(ids(result.keep));
  expect(kept.size).toBe(result.keep.length);
  expect(result.remove.filter((s) => kept.has(s.id))).toEqual([]);
  expect([...ids(result.keep), ...ids(result.remove)].sort()).toEqual(ids(c.snapshots).sort());

  // remove is newest first too (ties by id descending).
  for (let i = 1; i < result.remove.length; i++) {
    const [a, b] = [result.remove[i - 1]!, result.remove[i]!];
    expect(a.time.getTime() > b.time.getTime() || (a.time.getTime() === b.time.getTime() && a.id > b.id)).toBe(true);
  }

  // Every kept snapshot has a reason; no removed one has.
  expect([...result.reasons.keys()].sort()).toEqual([...kept].sort());
  for (const [id, want] of Object.entries(c.reasons ?? {})) expect(result.reasons.get(id)).toEqual(want);

  // Input order does not matter.
  for (const input of [[...c.snapshots].reverse(), shuffled(c.snapshots, 0x9e3779b9)]) {
    const again = applyRetention(input, c.policy, now);
    expect(ids(again.keep)).toEqual(c.keep);
    expect(ids(again.remove)).toEqual(ids(result.remove));
  }
}

describe("applyRetention", () => {
  it.each(cases)("$name", check);

  // Node re-reads TZ when it is assigned, so this catches local-time period arithmetic even on
  // a machine whose zone is UTC.
  describe.each(["America/Los_Angeles", "Pacific/Kiritimati"])("with TZ=%s", (zone) => {
    const saved = process.env["TZ"];
    beforeAll(() => {
      process.env["TZ"] = zone;
    });
    afterAll(() => {
      if (saved === undefined) delete process.env["TZ"];
      else process.env["TZ"] = saved;
    });
    it("every case gives the same answer", () => {
      expect(new Date("2026-11-20T00:30Z").getDate()).not.toBe(new Date("2026-11-20T23:30Z").getDate());
      for (const c of cases) check(c);
    });
  });

  it("reports per host and rule what each rule kept", () => {
    const result = applyRetention(hosts, { keepLast: 1, keepDaily: 2, keepWithin: 2 * DAY }, NOW);
    expect([...result.byRule.keys()]).toEqual(["alpha", "beta", "gamma"]);
    const alpha = result.byRule.get("alpha");
    expect([...(alpha?.keys() ?? [])]).toEqual(["last", "daily", "within"]);
    expect(alpha?.get("last")).toEqual(["alpha@2026-11-20T01:00"]);
    expect(alpha?.get("daily")).toEqual(["alpha@2026-11-20T01:00", "alpha@2026-11-19T01:00"]);
    // now − 2d = 2026-11-18T12:00
    expect(alpha?.get("within")).toEqual(["alpha@2026-11-20T01:00", "alpha@2026-11-19T01:00"]);
    expect(result.byRule.get("gamma")?.get("within")).toEqual([]);
    expect(result.byRule.get("gamma")?.get("daily")).toEqual(["gamma@2026-10-01T09:00", "gamma@2026-09-01T09:00"]);
  });

  it("leaves future-dated snapshots out of byRule and the empty policy's byRule empty", () => {
    const result = applyRetention(withFuture, { keepLast: 2 }, NOW);
    expect(result.byRule.get("a")?.get("last")).toEqual([d("2026-11-20"), d("2026-11-19")]);
    expect(applyRetention(withFuture, {}, NOW).byRule.get("a")?.size).toBe(0);
  });

  it("returns the caller's snapshot objects", () => {
    const result = applyRetention(crowded, { keepDaily: 1 }, NOW);
    expect(result.keep[0]).toBe(crowded[0]);
  });

  it.each([
    [{ keepDaily: -1 }, /^keep-daily must be a non-negative integer/],
    [{ keepLast: 1.5 }, /^keep-last must be a non-negative integer/],
    [{ keepHourly: Number.NaN }, /^keep-hourly must be a non-negative integer/],
    [{ keepWeekly: Number.POSITIVE_INFINITY }, /^keep-weekly must be a non-negative integer/],
    [{ keepMonthly: "3" as unknown as number }, /^keep-monthly must be a non-negative integer/],
    [{ keepYearly: -2 }, /^keep-yearly must be a non-negative integer/],
    [{ keepWithin: -DAY }, /^keep-within must be a non-negative integer/],
  ] as const)("rejects %o", (policy, message) => {
    expect(() => applyRetention(daily, policy, NOW)).toThrow(RangeError);
    expect(() => applyRetention(daily, policy, NOW)).toThrow(message);
    expect(() => isEmptyPolicy(policy)).toThrow(message);
    expect(() => describePolicy(policy)).toThrow(message);
  });

  it("rejects invalid times and duplicate ids", () => {
    expect(() => applyRetention([{ id: "bad", host: "a", time: new Date("nope") }], { keepLast: 1 }, NOW)).toThrow(
      /snapshot bad has an invalid time/,
    );
    expect(() => applyRetention(daily, { keepLast: 1 }, new Date("nope"))).toThrow(RangeError);
    expect(() => applyRetention([...crowded, crowded[0]!], { keepLast: 1 }, NOW)).toThrow(/duplicate snapshot id/);
  });
});

describe("isEmptyPolicy", () => {
  it.each([
    [{}, true],
    [{ keepLast: 0, keepWithin: 0 }, true],
    [{ keepDaily: 1 }, false],
    [{ keepWithin: 1 }, false],
  ] as const)("%o → %s", (policy, empty) => {
    expect(isEmptyPolicy(policy)).toBe(empty);
  });
});

describe("describePolicy", () => {
  it.each([
    [{ keepLast: 7, keepDaily: 7, keepWithin: 30 * DAY }, "keep-last 7, keep-daily 7, keep-within 30d"],
    [{ keepWithin: 30 * DAY, keepYearly: 2, keepLast: 1 }, "keep-last 1, keep-yearly 2, keep-within 30d"],
    [{ keepHourly: 24, keepWeekly: 4, keepMonthly: 12 }, "keep-hourly 24, keep-weekly 4, keep-monthly 12"],
    [{ keepWithin: 36 * HOUR }, "keep-within 1d12h"],
    [{ keepWithin: 90_500 }, "keep-within 1m30s500ms"],
    [{ keepLast: 0 }, "no rules (keep everything)"],
    [{}, "no rules (keep everything)"],
  ] as const)("%o → %s", (policy, text) => {
    expect(describePolicy(policy)).toBe(text);
  });
});
