import { parseSnapshotId } from "../model/snapshot-id.js";
import { runIsActive } from "../prune/plan.js";
import { DEFAULT_STALE_RUN_MS } from "../prune/prune.js";
import type { RunMarker, SnapshotObject } from "../repo/repository.js";

// What the dashboard says about a host, from the snapshot and run lists alone (no key needed):
// pure functions of the lists and the clock, so the overview, alerts and metrics agree.

export type HostStatus = "ok" | "stale" | "error";
export type RunState = "running" | "finished" | "abandoned";

export interface RunView {
  state: RunState;
  id: string;
  started: number;
  lastBeat: number | null;
}

/** A snapshot older than this (or none at all) makes its host stale, unless configured otherwise. */
export const DEFAULT_STALE_AFTER_MS = 26 * 3600_000;

/**
 * A run's state with prune's rule (prune/plan.ts runIsActive): running while it has no end
 * marker, no snapshot yet and a heartbeat within the last hour; finished once it has either;
 * abandoned otherwise (its process died without ending it).
 */
export function runState(run: RunMarker, existing: ReadonlySet<string>, now: number): RunState {
  if (run.finished || existing.has(run.snapshotId)) return "finished";
  return runIsActive(run, { now, staleRunMs: DEFAULT_STALE_RUN_MS, existing }) ? "running" : "abandoned";
}

/** Runs by host (the host part of the run's snapshot id); runs whose id does not parse are left out. */
export function runsByHost(runs: readonly RunMarker[]): Map<string, RunMarker[]> {
  const out = new Map<string, RunMarker[]>();
  for (const r of runs) {
    const name = parseSnapshotId(r.snapshotId);
    if (name === undefined) continue;
    const list = out.get(name.host);
    if (list === undefined) out.set(name.host, [r]);
    else list.push(r);
  }
  return out;
}

/** The host's newest run: latest first heartbeat, then the later id. */
export function lastRun(runs: readonly RunMarker[] | undefined, existing: ReadonlySet<string>, now: number): RunView | null {
  let newest: RunMarker | undefined;
  for (const r of runs ?? []) {
    if (newest === undefined || r.started > newest.started || (r.started === newest.started && r.snapshotId > newest.snapshotId)) newest = r;
  }
  if (newest === undefined) return null;
  const beats = newest.keys.length - (newest.finished ? 1 : 0);
  return { state: runState(newest, existing, now), id: newest.snapshotId, started: newest.started, lastBeat: beats > 0 ? newest.lastBeat : null };
}

export function hostStatus(latest: SnapshotObject | undefined, staleAfterMs: number, now: number, repoFailed: boolean): HostStatus {
  if (repoFailed) return "error";
  return latest === undefined || now - latest.time.getTime() > staleAfterMs ? "stale" : "ok";
}

/** Problems first (error, stale, abandoned last run), then by host name and repository. */
export function problemRank(h: { status: HostStatus; lastRun: { state: RunState } | null }): number {
  if (h.status === "error") return 0;
  if (h.status === "stale") return 1;
  return h.lastRun?.state === "abandoned" ? 2 : 3;
}

export function compareHosts<T extends { repo: string; host: string; status: HostStatus; lastRun: { state: RunState } | null }>(a: T, b: T): number {
  return problemRank(a) - problemRank(b) || cmp(a.host, b.host) || cmp(a.repo, b.repo);
}

const cmp = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);
