import { outcomeOf, type JobResult } from "../backup/job.js";
import { alertAfterRun, type AlertDecision } from "./alert-policy.js";
import type { Alert } from "./alerts.js";
import { HISTORY_SIZE, type DaemonState, type RunRecord } from "./state.js";

// What the daemon remembers, and whom it tells, once a run has ended. Pure, with the end time
// passed in, so days of failing and recovering runs replay in a unit test; the daemon only logs,
// persists and sends what comes back.

export interface RunOutcome {
  /** The record made when the run started. */
  run: RunRecord;
  result: JobResult;
  /** When the run ended (ms since the epoch). */
  end: number;
  /** How long a failing host waits between reminders. */
  repeatAfterMs: number;
  /** Named in alert messages. */
  host: string;
  /** The daemon is shutting down: its state stays "stopping", not "idle". */
  stopping: boolean;
  /** Applied to an error before it is stored or sent (it may quote a secret). */
  redact?: (text: string) => string;
}

export function recordRun(before: DaemonState, o: RunOutcome): { state: DaemonState; run: RunRecord; alert?: Alert } {
  const run = finishedRecord(o);
  const decision = alertAfterRun(before.failureStreak, run.status, o.end, o.repeatAfterMs);
  // An interrupted run proved nothing either way, so it neither resets nor extends a failure streak.
  const consecutiveFailures =
    run.status === "success" ? 0 : run.status === "failure" ? before.consecutiveFailures + 1 : before.consecutiveFailures;
  const state: DaemonState = {
    ...before,
    state: o.stopping ? "stopping" : "idle",
    current: undefined,
    lastRun: run,
    lastSuccess: run.status === "success" ? run : before.lastSuccess,
    consecutiveFailures,
    failureStreak: decision.streak,
    history: [run, ...before.history].slice(0, HISTORY_SIZE),
  };
  return { state, run, alert: decision.alert && runAlert(decision.alert, run, state, o.host) };
}

function finishedRecord(o: RunOutcome): RunRecord {
  const { result } = o;
  const run: RunRecord = {
    ...o.run,
    finished: new Date(o.end).toISOString(),
    durationMs: o.end - Date.parse(o.run.started),
    status: outcomeOf(result),
  };
  if (result.ok) {
    const s = result.summary;
    return {
      ...run,
      snapshotId: s.snapshotId, filesNew: s.filesNew, filesChanged: s.filesChanged, filesUnchanged: s.filesUnchanged,
      bytesRead: s.bytesRead, bytesUploaded: s.bytesUploaded, blobsUploaded: s.blobsUploaded, errors: s.errors.length,
    };
  }
  if (result.interrupted) return run;
  const redact = o.redact ?? ((text: string) => text);
  return { ...run, error: redact((result.error as Error)?.message ?? String(result.error)).split("\n")[0] };
}

function runAlert(decision: AlertDecision, run: RunRecord, state: DaemonState, host: string): Alert {
  const message = {
    failure: `backup failed on ${host}: ${run.error}`,
    reminder: `backups still failing on ${host} since ${state.failureStreak?.since} (${state.consecutiveFailures} failed runs in a row): ${run.error}`,
    recovered: `backups work again on ${host}: snapshot ${run.snapshotId}`,
  }[decision];
  return { kind: decision === "recovered" ? "recovered" : "failure", message, host, run, time: run.finished ?? run.started };
}
