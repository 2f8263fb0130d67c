import { describe, expect, it } from "vitest";
import type { RunMarker } from "../src/repo/repository.js";
import { compareHosts, lastRun, runState, type HostStatus, type RunState } from "../src/serve/status.js";

// Issue 18 item 2: a run's state from its runs/ markers, with prune's rule (an hour without a
// heartbeat and no end: abandoned), and the overview's order (problems first).

const T = Date.UTC(2026, 10, 28, 6);
const MIN = 60_000;
const ID = "20261128T060000Z_web_0000000a";

const run = (o: Partial<RunMarker>): RunMarker => ({ snapshotId: ID, started: T - 10 * MIN, lastBeat: T - 5 * MIN, finished: false, keys: ["b1", "b2"], ...o });

describe("run state", () => {
  it.each<[string, RunMarker, Set<string>, RunState]>([
    ["ended", run({ finished: true, keys: ["b1", "end"] }), new Set(), "finished"],
    ["its snapshot exists (end marker lost)", run({ lastBeat: T - 300 * MIN }), new Set([ID]), "finished"],
    ["a heartbeat 5 min ago", run({}), new Set(), "running"],
    ["a heartbeat 59 min ago", run({ lastBeat: T - 59 * MIN }), new Set(), "running"],
    ["a heartbeat 61 min ago, no end", run({ lastBeat: T - 61 * MIN }), new Set(), "abandoned"],
  ])("%s: %s", (_name, r, existing, state) => {
    expect(runState(r, existing, T)).toBe(state);
  });

  it("the host's last run is the one that started last; lastBeat null when only the end marker is left", () => {
    const older = run({ snapshotId: "20261128T050000Z_web_0000000b", started: T - 90 * MIN, finished: true, keys: ["end"], lastBeat: T - 80 * MIN });
    expect(lastRun([run({ lastBeat: T - 120 * MIN, started: T - 130 * MIN }), older], new Set(), T)).toEqual({
      state: "finished", id: older.snapshotId, started: older.started, lastBeat: null,
    });
    expect(lastRun([], new Set(), T)).toBeNull();
  });
});

describe("overview order", () => {
  it("error, stale, abandoned run, then the rest; by host name, then repository", () => {
    const h = (repo: string, host: string, status: HostStatus, state?: RunState) => ({ repo, host, status, lastRun: state === undefined ? null : { state } });
    const hosts = [
      h("a", "zeta", "ok", "finished"), h("a", "alpha", "ok"), h("b", "mid", "ok", "abandoned"), h("a", "web", "stale"),
      h("b", "web", "error"), h("a", "db", "error"), h("a", "mid", "ok", "abandoned"),
    ];
    expect(hosts.sort(compareHosts).map((x) => `${x.repo}/${x.host}`)).toEqual(["a/db", "b/web", "a/web", "a/mid", "b/mid", "a/alpha", "a/zeta"]);
  });
});
