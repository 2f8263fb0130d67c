// Retention: given the snapshots in a repository and a policy, decide which to keep. Pure: no
// I/O and no clock of its own. `now` comes in as an argument so that prune, its dry run and the
// tests agree on the same answer.
//
// The rules follow restic's `forget` (keep-last, keep-hourly … keep-yearly, keep-within), applied
// to each host separately, with two deliberate differences. Both exist because vaultik assumes a
// backup source can be compromised and upload snapshots with whatever timestamp it likes:
//
// 1. keep-within D keeps snapshots with time >= now − D, where `now` is the pruning machine's
//    clock. restic measures D back from the newest snapshot instead, so one fake snapshot dated
//    in 2099 would move the window and let prune delete every real snapshot.
// 2. A snapshot dated more than FUTURE_TOLERANCE_MS after `now` is always kept and is never
//    counted by any count rule (keep-last or a bucket rule). Otherwise fake future-dated
//    snapshots would take the places of real ones. Its reason says "future-dated: kept, not
//    counted", so an operator sees it and can delete it by hand.
//
// Periods (hour, day, ISO week, month, year) are computed in UTC, so that the same repository
// prunes the same way from every machine whatever its time zone, and daylight-saving changes
// never merge or split a day.
//
// A count of 0 means "rule not set", as in restic: a policy of all zeros is empty and keeps
// everything. Deleting every snapshot must never be what a typo or a default value does.

import type { RetentionPolicy } from "./policy.js";

export interface SnapshotRef {
  id: string;
  host: string;
  time: Date;
}

export type RuleName = "last" | "hourly" | "daily" | "weekly" | "monthly" | "yearly" | "within";

export interface RetentionResult {
  /** Snapshots to keep, newest first (ties: id descending). */
  keep: SnapshotRef[];
  /** Snapshots to remove, newest first (ties: id descending). */
  remove: SnapshotRef[];
  /** Snapshot id → why it was kept, e.g. "daily 2026-11-20", "last 3/7", "within 30d". */
  reasons: Map<string, string[]>;
  /** Per host and rule, the ids that rule kept, so prune can print what each rule keeps. */
  byRule: Map<string, Map<RuleName, string[]>>;
}

/**
 * How far ahead of `now` a snapshot may be dated and still count as an ordinary snapshot. Clocks
 * of a source and of the pruning machine drift apart; an hour absorbs that without letting a
 * forged timestamp gain anything.
 */
export const FUTURE_TOLERANCE_MS = 60 * 60 * 1000;

/** Reason recorded for a snapshot dated after now + FUTURE_TOLERANCE_MS. */
export const FUTURE_REASON = "future-dated: kept, not counted";

/** Reason recorded for every snapshot when the policy sets no rule. */
export const EMPTY_POLICY_REASON = "no retention rule set: keep all";

type BucketRule = Exclude<RuleName, "last" | "within">;

// One row per rule, in the order rules are listed in reasons, byRule and describePolicy.
const RULES: readonly { name: RuleName; key: keyof RetentionPolicy; flag: string }[] = [
  { name: "last", key: "keepLast", flag: "keep-last" },
  { name: "hourly", key: "keepHourly", flag: "keep-hourly" },
  { name: "daily", key: "keepDaily", flag: "keep-daily" },
  { name: "weekly", key: "keepWeekly", flag: "keep-weekly" },
  { name: "monthly", key: "keepMonthly", flag: "keep-monthly" },
  { name: "yearly", key: "keepYearly", flag: "keep-yearly" },
  { name: "within", key: "keepWithin", flag: "keep-within" },
];

/** True when the policy sets no rule (every value absent or 0): such a policy keeps everything. */
export function isEmptyPolicy(policy: RetentionPolicy): boolean {
  validatePolicy(policy);
  return RULES.every((rule) => (policy[rule.key] ?? 0) === 0);
}

/** One line for logs and `prune --dry-run`, e.g. "keep-last 7, keep-daily 7, keep-within 30d". */
export function describePolicy(policy: RetentionPolicy): string {
  validatePolicy(policy);
  const parts: string[] = [];
  for (const rule of RULES) {
    const value = policy[rule.key] ?? 0;
    if (value === 0) continue;
    parts.push(`${rule.flag} ${rule.name === "within" ? formatDuration(value) : String(value)}`);
  }
  return parts.length === 0 ? "no rules (keep everything)" : parts.join(", ");
}

/**
 * Splits `snapshots` into keep and remove according to `policy`, per host, with restic's
 * `forget` rules and periods in UTC. Input order does not matter; equal times order by id
 * descending. Two deliberate differences from restic (see the top of this file for why):
 * keep-within counts back from `now`, not from the newest snapshot; and snapshots dated after
 * now + 1 h are always kept and never counted by keep-last or a bucket rule.
 *
 * Throws RangeError for an invalid policy, an invalid time or a duplicate id, before deciding
 * anything, so a bad input never yields a partial plan.
 */
export function applyRetention(
  snapshots: readonly SnapshotRef[],
  policy: RetentionPolicy,
  now: Date,
  /** A host's own policy over `policy` (apps: each app is a host with its own retention). */
  perHost: ReadonlyMap<string, RetentionPolicy> = new Map(),
): RetentionResult {
  validatePolicy(policy);
  for (const p of perHost.values()) validatePolicy(p);
  const nowMs = now.getTime();
  if (Number.isNaN(nowMs)) throw new RangeError("retention: now is an invalid date");
  const seen = new Set<string>();
  for (const s of snapshots) {
    if (Number.isNaN(s.time.getTime())) {
      throw new RangeError(`retention: snapshot ${s.id} has an invalid time`);
    }
    if (seen.has(s.id)) throw new RangeError(`retention: duplicate snapshot id ${s.id}`);
    seen.add(s.id);
  }

  const sorted = [...snapshots].sort(newestFirst);
  const reasons = new Map<string, string[]>();
  const byRule = new Map<string, Map<RuleName, string[]>>();
  const hosts = [...new Set(sorted.map((s) => s.host))].sort();

  const addReason = (id: string, reason: string): void => {
    const list = reasons.get(id);
    if (list) list.push(reason);
    else reasons.set(id, [reason]);
  };

  for (const host of hosts) {
    const ruleIds = new Map<RuleName, string[]>();
    byRule.set(host, ruleIds);
    const hostPolicy = perHost.get(host) ?? policy;
    const counted: SnapshotRef[] = [];
    for (const s of sorted) {
      if (s.host !== host) continue;
      if (isEmptyPolicy(hostPolicy)) addReason(s.id, EMPTY_POLICY_REASON);
      else if (s.time.getTime() > nowMs + FUTURE_TOLERANCE_MS) addReason(s.id, FUTURE_REASON);
      else counted.push(s);
    }

    // Rules run in RULES order so each snapshot's reasons read in that order.
    for (const rule of RULES) {
      const value = hostPolicy[rule.key] ?? 0;
      if (value === 0) continue;
      const kept = keptBy(rule.name, value, counted, nowMs);
      for (const [s, reason] of kept) addReason(s.id, reason);
      ruleIds.set(rule.name, kept.map(([s]) => s.id));
    }
  }

  const keep: SnapshotRef[] = [];
  const remove: SnapshotRef[] = [];
  for (const s of sorted) (reasons.has(s.id) ? keep : remove).push(s);
  return { keep, remove, reasons, byRule };
}

/**
 * What one rule keeps among a host's counted snapshots (newest first), each with its reason.
 * `value` is the rule's count, or for "within" its duration in milliseconds.
 */
function keptBy(
  rule: RuleName,
  value: number,
  counted: readonly SnapshotRef[],
  nowMs: number,
): [SnapshotRef, string][] {
  if (rule === "last") {
    return counted.slice(0, value).map((s, i) => [s, `last ${i + 1}/${value}`]);
  }
  if (rule === "within") {
    const label = `within ${formatDuration(value)}`;
    return counted.filter((s) => s.time.getTime() >= nowMs - value).map((s) => [s, label]);
  }
  const kept: [SnapshotRef, string][] = [];
  let previous: string | undefined;
  // Newest first, so the first snapshot met in each new period is that period's newest; the
  // older ones in the same period are skipped, and the walk stops after `value` periods.
  for (const s of counted) {
    if (kept.length === value) break;
    const period = periodOf(rule, s.time);
    if (period === previous) continue;
    previous = period;
    kept.push([s, `${rule} ${period}`]);
  }
  return kept;
}

function validatePolicy(policy: RetentionPolicy): void {
  for (const rule of RULES) {
    const value: unknown = policy[rule.key];
    if (value === undefined) continue;
    if (typeof value !== "number" || !Number.isInteger(value) || value < 0) {
      const unit = rule.name === "within" ? " (milliseconds)" : "";
      throw new RangeError(
        `${rule.flag} must be a non-negative integer${unit}, got ${String(value)}`,
      );
    }
  }
}

/** Newest first; equal times by id descending, so the order never depends on input order. */
function newestFirst(a: SnapshotRef, b: SnapshotRef): number {
  const byTime = b.time.getTime() - a.time.getTime();
  if (byTime !== 0) return byTime;
  // Plain code-unit comparison: localeCompare would depend on the machine's locale.
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

/** The UTC period a time falls in; doubles as the human label in reasons. */
function periodOf(rule: BucketRule, time: Date): string {
  const year = String(time.getUTCFullYear()).padStart(4, "0");
  const month = pad2(time.getUTCMonth() + 1);
  const day = pad2(time.getUTCDate());
  switch (rule) {
    case "hourly":
      return `${year}-${month}-${day} ${pad2(time.getUTCHours())}:00`;
    case "daily":
      return `${year}-${month}-${day}`;
    case "weekly":
      return isoWeek(time);
    case "monthly":
      return `${year}-${month}`;
    case "yearly":
      return year;
  }
}

/**
 * ISO-8601 week as "YYYY-Www". The week belongs to the year that holds its Thursday, so
 * 2027-01-01 (a Friday) is in 2026-W53 and the week is never split at New Year.
 */
function isoWeek(time: Date): string {
  const DAY = 24 * 60 * 60 * 1000;
  const midnight = Date.UTC(time.getUTCFullYear(), time.getUTCMonth(), time.getUTCDate());
  const weekday = (time.getUTCDay() + 6) % 7; // Monday 0 … Sunday 6
  const thursday = new Date(midnight + (3 - weekday) * DAY);
  const isoYear = thursday.getUTCFullYear();
  const week = Math.floor((thursday.getTime() - Date.UTC(isoYear, 0, 1)) / (7 * DAY)) + 1;
  return `${String(isoYear).padStart(4, "0")}-W${pad2(week)}`;
}

/** 30 days → "30d", 36 hours → "1d12h", 90 s → "1m30s". */
function formatDuration(ms: number): string {
  const units: readonly [string, number][] = [
    ["d", 24 * 60 * 60 * 1000],
    ["h", 60 * 60 * 1000],
    ["m", 60 * 1000],
    ["s", 1000],
    ["ms", 1],
  ];
  let rest = ms;
  let out = "";
  for (const [suffix, size] of units) {
    const n = Math.floor(rest / size);
    if (n > 0) out += `${n}${suffix}`;
    rest -= n * size;
  }
  return out === "" ? "0s" : out;
}

function pad2(n: number): string {
  return String(n).padStart(2, "0");
}
