// Prometheus metrics for the daemon. They live on a private Registry, not prom-client's global
// one, so that a library user embedding vaultik keeps their own registry clean and tests can
// create as many independent instances as they like.

import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import { VERSION } from "../version.js";
import type { RunRecord } from "./state.js";

/** The app label of a config without `apps:` (config/apps.ts DEFAULT_APP). */
const DEFAULT_APP = "default";

/** Run durations from a quiet re-run (seconds) to a first backup of a large tree (hours). */
export const DURATION_BUCKETS = [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21600];

export interface DaemonMetricsOptions {
  /**
   * How many paths are dirty right now; read at each scrape. Read, not pushed, so the gauge cannot
   * drift from the watcher (a copy set on change events went stale when a run took the set).
   */
  dirtyPaths?: () => number;
}

export class DaemonMetrics {
  readonly registry: Registry;
  readonly contentType: string;

  readonly #up: Gauge;
  readonly #running: Gauge;
  readonly #lastSuccess: Gauge;
  readonly #lastStatus: Gauge;
  readonly #lastDuration: Gauge;
  readonly #runs: Counter<"status">;
  readonly #bytesRead: Counter;
  readonly #bytesUploaded: Counter;
  readonly #files: Counter<"kind">;
  readonly #blobs: Counter;
  readonly #errors: Counter;
  // Per app (issue 19). The families above keep their label sets, so existing scrapes and alerts
  // read the same series; with apps: they count every app together.
  readonly #duration: Histogram<"app">;
  readonly #appUploaded: Counter<"app">;
  readonly #appRuns: Counter<"app" | "status">;
  readonly #appLastSuccess: Gauge<"app">;
  readonly #snapshots: Gauge<"app">;

  constructor(options: DaemonMetricsOptions = {}) {
    const register = new Registry();
    this.registry = register;
    this.contentType = register.contentType;
    collectDefaultMetrics({ register });

    const registers = [register];
    const gauge = (name: string, help: string): Gauge => new Gauge({ name, help, registers });
    const counter = (name: string, help: string): Counter => new Counter({ name, help, registers });

    this.#up = gauge("vaultik_up", "1 while the vaultik daemon is running.");
    this.#running = gauge("vaultik_running", "1 while a backup run is in progress.");
    const dirtyPaths = options.dirtyPaths ?? (() => 0);
    new Gauge({
      name: "vaultik_dirty_paths",
      help: "Paths changed since the last run, waiting for the next one.",
      registers,
      collect() {
        this.set(dirtyPaths());
      },
    });
    this.#lastSuccess = gauge(
      "vaultik_last_success_timestamp_seconds",
      "Unix time at which the last successful backup run finished; 0 if none yet.",
    );
    this.#lastStatus = gauge("vaultik_last_run_status", "Outcome of the last finished run: 1 success, 0 failure.");
    this.#lastDuration = gauge("vaultik_last_run_duration_seconds", "Wall-clock duration of the last finished run.");
    this.#runs = new Counter({
      name: "vaultik_runs_total",
      help: "Finished backup runs by outcome: success, failure, or interrupted (the daemon was stopped).",
      labelNames: ["status"] as const,
      registers,
    });
    this.#bytesRead = counter("vaultik_bytes_read_total", "Bytes read from source files.");
    this.#bytesUploaded = counter("vaultik_bytes_uploaded_total", "Bytes uploaded to the store, after compression and encryption.");
    this.#files = new Counter({
      name: "vaultik_files_total",
      help: "Files seen by backup runs, by whether they were new, changed or unchanged.",
      labelNames: ["kind"] as const,
      registers,
    });
    this.#blobs = counter("vaultik_blobs_uploaded_total", "Blobs (packs) uploaded to the store.");
    this.#errors = counter("vaultik_errors_total", "Paths that could not be read during backup runs.");

    this.#duration = new Histogram({
      name: "vaultik_backup_duration_seconds",
      help: "Wall-clock duration of finished backup runs, by app.",
      labelNames: ["app"] as const,
      buckets: DURATION_BUCKETS,
      registers,
    });
    const byApp = { labelNames: ["app"] as const, registers };
    this.#appUploaded = new Counter({
      name: "vaultik_backup_uploaded_bytes_total",
      help: "Bytes uploaded to the repository by backup runs (blobs and snapshots, after compression and encryption), by app.",
      ...byApp,
    });
    this.#appRuns = new Counter({
      name: "vaultik_backup_runs_total",
      help: "Finished backup runs by app and outcome: success, failure or interrupted.",
      labelNames: ["app", "status"] as const,
      registers,
    });
    this.#appLastSuccess = new Gauge({
      name: "vaultik_backup_last_success_timestamp_seconds",
      help: "Unix time at which the app's last successful run finished; 0 if none yet.",
      ...byApp,
    });
    this.#snapshots = new Gauge({
      name: "vaultik_snapshots",
      help: "The app's snapshots in the repository (its snapshot host), counted after each of its successful runs.",
      ...byApp,
    });
    new Gauge({ name: "vaultik_build_info", help: "Always 1; the labels name the vaultik and Node.js versions.", labelNames: ["version", "node"] as const, registers })
      .set({ version: VERSION, node: process.version }, 1);

    // Create every labelled series at 0 up front: `rate()` and alerts such as
    // `increase(vaultik_runs_total{status="failure"}[1h]) > 0` misbehave on series that only
    // appear after their first increment.
    for (const status of ["success", "failure", "interrupted"] as const) this.#runs.inc({ status }, 0);
    for (const kind of ["new", "changed", "unchanged"] as const) this.#files.inc({ kind }, 0);
    // Before the first success the gauge reads 0, so "time since last success" is huge and a
    // staleness alert fires, which is the truth.
    this.#lastSuccess.set(0);
    this.#up.set(1);
  }

  runStarted(_run: RunRecord): void {
    this.#running.set(1);
  }

  /** Creates the app's series at 0, so dashboards and rate() see it before its first run. */
  declareApp(app: string): void {
    for (const status of ["success", "failure", "interrupted"] as const) this.#appRuns.inc({ app, status }, 0);
    this.#appUploaded.inc({ app }, 0);
    this.#duration.zero({ app });
    this.#appLastSuccess.set({ app }, 0);
  }

  /** How many snapshots of the app the repository holds, after a run listed them. */
  setSnapshots(app: string, count: number): void {
    this.#snapshots.set({ app }, count);
  }

  runFinished(run: RunRecord, app = DEFAULT_APP): void {
    this.#appRun(run, app);
    this.#running.set(0);
    const ok = run.status === "success";
    this.#runs.inc({ status: run.status === "interrupted" ? "interrupted" : ok ? "success" : "failure" });
    // A stop says nothing about whether backups work, so the last real outcome stays.
    if (run.status !== "interrupted") this.#lastStatus.set(ok ? 1 : 0);
    const duration = run.durationMs ?? elapsedMs(run);
    if (duration !== undefined) this.#lastDuration.set(duration / 1000);
    if (ok) {
      const finished = Date.parse(run.finished ?? run.started);
      if (Number.isFinite(finished)) this.#lastSuccess.set(finished / 1000);
    }
    // A failed run still read and uploaded what it did (and those blobs are reused by the next
    // run), so the work counters count every run, not only successful ones.
    this.#bytesRead.inc(nonNegative(run.bytesRead));
    this.#bytesUploaded.inc(nonNegative(run.bytesUploaded));
    this.#blobs.inc(nonNegative(run.blobsUploaded));
    this.#errors.inc(nonNegative(run.errors));
    this.#files.inc({ kind: "new" }, nonNegative(run.filesNew));
    this.#files.inc({ kind: "changed" }, nonNegative(run.filesChanged));
    this.#files.inc({ kind: "unchanged" }, nonNegative(run.filesUnchanged));
  }

  #appRun(run: RunRecord, app: string): void {
    const status = run.status === "interrupted" ? "interrupted" : run.status === "success" ? "success" : "failure";
    this.#appRuns.inc({ app, status });
    const duration = run.durationMs ?? elapsedMs(run);
    if (duration !== undefined && duration >= 0) this.#duration.observe({ app }, duration / 1000);
    this.#appUploaded.inc({ app }, nonNegative(run.bytesUploaded));
    if (status === "success") {
      const finished = Date.parse(run.finished ?? run.started);
      if (Number.isFinite(finished)) this.#appLastSuccess.set({ app }, finished / 1000);
    }
  }

  /** The exposition text for a scrape, in the format named by `contentType`. */
  text(): Promise<string> {
    return this.registry.metrics();
  }
}

function elapsedMs(run: RunRecord): number | undefined {
  if (run.finished === undefined) return undefined;
  const ms = Date.parse(run.finished) - Date.parse(run.started);
  return Number.isFinite(ms) ? ms : undefined;
}

/** prom-client throws on a negative increment; a bogus record must not take the daemon down. */
function nonNegative(n: number): number {
  return Number.isFinite(n) && n > 0 ? n : 0;
}
