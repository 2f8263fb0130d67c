import { describe, expect, it } from "vitest";
import type { BackupSummary } from "../src/backup/archiver.js";
import type { JobResult } from "../src/backup/job.js";
import { recordRun, type RunOutcome } from "../src/daemon/record-run.js";
import { HISTORY_SIZE, type DaemonState, type RunRecord } from "../src/daemon/state.js";

// What the daemon remembers and whom it tells after each run, as a pure function over fixtures:
// no daemon, no clock but the one passed in (issue 13 item 6).

const T0 = Date.parse("2025-06-01T11:00:00.000Z");
const HOUR = 3600_000;

function started(seq: number, at: number): RunRecord {
  return {
    seq, trigger: "schedule", status: "running", started: new Date(at).toISOString(),
    filesNew: 0, filesChanged: 0, filesUnchanged: 0, bytesRead: 0, bytesUploaded: 0, blobsUploaded: 0, errors: 0,
  };
}

function idle(over: Partial<DaemonState> = {}): DaemonState {
  return {
    state: "running", pid: 42, version: "0.1.0", startedAt: new Date(T0).toISOString(),
    dirtyPaths: 0, consecutiveFailures: 0, history: [], ...over,
  };
}

const SUMMARY: BackupSummary = {
  snapshotId: "20250601T110000Z_nas_00000001", filesNew: 2, filesChanged: 1, filesUnchanged: 7, dirs: 3, symlinks: 0,
  special: 0, hardLinks: 0, sockets: 0, bytesRead: 1000, bytesNew: 600, bytesUploaded: 900, blobsUploaded: 1, snapshotSize: 300,
  errors: [{ path: "/src/locked", message: "EACCES" }], changedDuringBackup: [], durationMs: 5000, workers: 1,
};

const ok: JobResult = { ok: true, summary: SUMMARY };
const failed = (message: string): JobResult => ({ ok: false, error: new Error(message), interrupted: false });
const interrupted: JobResult = { ok: false, error: new Error("aborted"), interrupted: true };

function outcome(run: RunRecord, result: JobResult, end: number, over: Partial<RunOutcome> = {}): RunOutcome {
  return { run, result, end, repeatAfterMs: 24 * HOUR, host: "nas", stopping: false, ...over };
}

describe("recordRun", () => {
  it("records a success: counts, history, last success, no alert on a healthy host", () => {
    const before = idle();
    const { state, run, alert } = recordRun(before, outcome(started(1, T0), ok, T0 + 5000));
    expect(run).toMatchObject({
      status: "success", finished: "2025-06-01T11:00:05.000Z", durationMs: 5000, snapshotId: SUMMARY.snapshotId,
      filesNew: 2, filesChanged: 1, filesUnchanged: 7, bytesRead: 1000, bytesUploaded: 900, blobsUploaded: 1, errors: 1,
    });
    expect(state).toMatchObject({ state: "idle", lastRun: run, lastSuccess: run, consecutiveFailures: 0, history: [run] });
    expect(state.current).toBeUndefined();
    expect(alert).toBeUndefined();
    expect(before.history, "the input state is left as it was").toEqual([]);
  });

  it("alerts once when a working host starts failing, with the first line of the redacted error", () => {
    const { state, run, alert } = recordRun(
      idle(),
      outcome(started(1, T0), failed("cannot reach s3 with key SECRET\nstack…"), T0 + 1000, { redact: (s) => s.replace("SECRET", "***") }),
    );
    expect(run).toMatchObject({ status: "failure", error: "cannot reach s3 with key ***" });
    expect(state.consecutiveFailures).toBe(1);
    expect(state.failureStreak).toEqual({ since: "2025-06-01T11:00:01.000Z", alerted: "2025-06-01T11:00:01.000Z" });
    expect(alert).toEqual({
      kind: "failure", message: "backup failed on nas: cannot reach s3 with key ***", host: "nas", run, time: "2025-06-01T11:00:01.000Z",
    });
  });

  it("stays quiet while failing inside repeat_after, reminds after it, and says when it recovered", () => {
    let state = idle();
    const alerts: (string | undefined)[] = [];
    const ends = [T0, T0 + HOUR, T0 + 25 * HOUR];
    ends.forEach((end, i) => {
      const r = recordRun(state, outcome(started(i + 1, end - 1000), failed("store unreachable"), end));
      state = r.state;
      alerts.push(r.alert?.message);
    });
    const back = recordRun(state, outcome(started(4, T0 + 26 * HOUR), ok, T0 + 26 * HOUR));
    alerts.push(back.alert?.message);
    expect(alerts).toEqual([
      "backup failed on nas: store unreachable",
      undefined,
      "backups still failing on nas since 2025-06-01T11:00:00.000Z (3 failed runs in a row): store unreachable",
      `backups work again on nas: snapshot ${SUMMARY.snapshotId}`,
    ]);
    expect(back.alert?.kind).toBe("recovered");
    expect(back.state.consecutiveFailures).toBe(0);
    expect(back.state.failureStreak).toBeUndefined();
  });

  it("an interrupted run neither resets nor extends a failure streak, and keeps the stopping state", () => {
    const streak = { since: "2025-06-01T10:00:00.000Z", alerted: "2025-06-01T10:00:00.000Z" };
    const before = idle({ state: "stopping", consecutiveFailures: 2, failureStreak: streak });
    const { state, run, alert } = recordRun(before, outcome(started(5, T0), interrupted, T0 + 10, { stopping: true }));
    expect(run.status).toBe("interrupted");
    expect(run.error).toBeUndefined();
    expect(state).toMatchObject({ state: "stopping", consecutiveFailures: 2, failureStreak: streak, lastRun: run });
    expect(state.lastSuccess).toBeUndefined();
    expect(alert).toBeUndefined();
  });

  it("keeps the newest HISTORY_SIZE runs, newest first", () => {
    const old = Array.from({ length: HISTORY_SIZE }, (_, i) => ({ ...started(HISTORY_SIZE - i, T0 - i * HOUR), status: "success" as const }));
    const { state, run } = recordRun(idle({ history: old }), outcome(started(HISTORY_SIZE + 1, T0 + HOUR), ok, T0 + HOUR + 1));
    expect(state.history).toHaveLength(HISTORY_SIZE);
    expect(state.history[0]).toBe(run);
    expect(state.history.at(-1)!.seq).toBe(2);
  });
});
