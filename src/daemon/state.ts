// What the daemon knows about itself; the status server, metrics, alerts and health-check read
// it. Kept as plain data so it can be served as JSON and written to the state file as is.

export type RunTrigger = "startup" | "watch" | "full-scan" | "schedule" | "retry";
/** "interrupted": the daemon was stopped (SIGTERM/SIGINT) during the run; not a failure. */
export type RunStatus = "running" | "success" | "failure" | "interrupted";

export interface RunRecord {
  /** Sequence number within this daemon's life. */
  seq: number;
  trigger: RunTrigger;
  status: RunStatus;
  started: string;
  finished?: string;
  durationMs?: number;
  snapshotId?: string;
  /** One line, secret-free. */
  error?: string;
  filesNew: number;
  filesChanged: number;
  filesUnchanged: number;
  bytesRead: number;
  bytesUploaded: number;
  blobsUploaded: number;
  /** Paths that could not be read (the run still wrote a snapshot). */
  errors: number;
  /** The app it backed up; only with `apps:` in the config. */
  app?: string;
}

export interface RunProgress {
  filesDone: number;
  bytesDone: number;
  currentPath: string;
}

/** A run of failures the operator has been told about (see alert-policy.ts). */
export interface FailureStreak {
  /** ISO time of the first failed run of the streak. */
  since: string;
  /** ISO time of the last alert about it (the first one or a reminder). */
  alerted: string;
}

export interface DaemonState {
  /** "stopped" is written to the state file by a daemon that exited cleanly. */
  state: "idle" | "running" | "stopping" | "stopped";
  pid: number;
  version: string;
  startedAt: string;
  current?: { run: RunRecord; progress: RunProgress };
  lastRun?: RunRecord;
  lastSuccess?: RunRecord;
  /** ISO time of the next planned run, if any. */
  nextRun?: string;
  dirtyPaths: number;
  consecutiveFailures: number;
  /** The failures alerted about, while runs keep failing; for reminders and the recovered alert. */
  failureStreak?: FailureStreak;
  /** Newest first, at most HISTORY_SIZE. */
  history: RunRecord[];
  /** With `apps:`: each app's own state; the fields above then sum them up (overallState). */
  apps?: Record<string, DaemonState>;
}

export const HISTORY_SIZE = 50;

/**
 * Healthy: the last run that finished on its own did not fail, and the last success is younger
 * than `staleAfterMs`. An interrupted run (a clean stop) says nothing about whether backups work,
 * so it is passed over: it neither hides an earlier failure nor counts as one.
 */
export function isHealthy(s: Pick<DaemonState, "lastRun" | "lastSuccess" | "history" | "apps">, now: number, staleAfterMs: number): { healthy: boolean; reason: string } {
  // With apps, one app whose backups stopped is enough: another app's success must not hide it.
  if (s.apps) {
    for (const [name, app] of Object.entries(s.apps)) {
      const verdict = isHealthy(app, now, staleAfterMs);
      if (!verdict.healthy) return { healthy: false, reason: `app ${name}: ${verdict.reason}` };
    }
    return { healthy: true, reason: `every app (${Object.keys(s.apps).join(", ")}) is healthy` };
  }
  if (!s.lastSuccess) return { healthy: false, reason: "no backup has succeeded yet" };
  const judged = s.lastRun?.status === "interrupted" ? s.history.find((r) => r.status === "success" || r.status === "failure") : s.lastRun;
  if (judged && judged.status === "failure") return { healthy: false, reason: `last run failed: ${judged.error ?? "unknown error"}` };
  const age = now - Date.parse(s.lastSuccess.finished ?? s.lastSuccess.started);
  if (age > staleAfterMs) return { healthy: false, reason: `last success was ${Math.round(age / 60000)} minutes ago` };
  return { healthy: true, reason: `last success ${s.lastSuccess.snapshotId ?? ""} at ${s.lastSuccess.finished ?? s.lastSuccess.started}` };
}

/**
 * The daemon's state over several apps: the newest run and success of any, the earliest next
 * run, the longest failing streak, the histories merged, and each app's own under `apps`.
 */
export function overallState(base: Pick<DaemonState, "state" | "pid" | "version" | "startedAt">, apps: ReadonlyMap<string, DaemonState>): DaemonState {
  const all = [...apps.values()];
  const newest = (runs: (RunRecord | undefined)[]) =>
    runs.filter((r): r is RunRecord => r !== undefined).sort(newestFirst)[0];
  const next = all.map((a) => a.nextRun).filter((t): t is string => t !== undefined).sort()[0];
  return {
    ...base,
    current: all.find((a) => a.current)?.current,
    lastRun: newest(all.map((a) => a.lastRun)),
    lastSuccess: newest(all.map((a) => a.lastSuccess)),
    nextRun: next,
    dirtyPaths: all.reduce((n, a) => n + a.dirtyPaths, 0),
    consecutiveFailures: Math.max(0, ...all.map((a) => a.consecutiveFailures)),
    history: all.flatMap((a) => a.history).sort(newestFirst).slice(0, HISTORY_SIZE),
    apps: Object.fromEntries(apps),
  };
}

function newestFirst(a: RunRecord, b: RunRecord): number {
  return (b.finished ?? b.started).localeCompare(a.finished ?? a.started) || b.seq - a.seq;
}
