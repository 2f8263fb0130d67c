import { hostname } from "node:os";
import { Cron } from "croner";
import { runJob, type JobResult } from "../backup/job.js";
import { backupScope } from "../backup/run.js";
import { loadConfig, type Config } from "../config/index.js";
import { VERSION } from "../version.js";
import { Alerter } from "./alerts.js";
import { DaemonMetrics } from "./metrics.js";
import { Redactor } from "./redact.js";
import { recordRun } from "./record-run.js";
import { nextRun, type PlannedRun } from "./scheduler.js";
import { HISTORY_SIZE, type DaemonState, type RunRecord, type RunTrigger } from "./state.js";
import { readStateFile, writeStateFile } from "./state-file.js";
import { startStatusServer } from "./status-server.js";
import { watchDirty, type DirtyWatcher } from "./watcher.js";
import type { Store } from "../store/store.js";
import { ownStart } from "../util/process.js";
import { errorMessage } from "../errors.js";

// The long-running `backup --daemon`: watches, schedules, runs backups with hooks and command
// sources, serves status and metrics, and alerts. One failed run never stops it; SIGTERM ends
// it cleanly (a running backup is interrupted: nothing it wrote is referenced, and its
// post_backup hook still runs), SIGHUP reloads the config (a bad one is reported and the old one
// kept). The run history lives in the state file beside the index, so a restart keeps it.

export interface DaemonOptions {
  /** Undefined: the config comes from VAULTIK_* variables alone, read again on SIGHUP. */
  configPath?: string;
  /** One log line (already redacted by the daemon). */
  log: (line: string) => void;
  /** The store one run writes to, upload limit included (a fresh budget per run). */
  openStore: (config: Config) => Store;
  now?: () => number;
}

const STALE_CHECK_MS = 60_000;

export class Daemon {
  private config!: Config;
  private readonly redactor = new Redactor([]);
  private readonly metrics = new DaemonMetrics({ dirtyPaths: () => this.dirtyCount() });
  private alerter!: Alerter;
  private watcher: DirtyWatcher | undefined;
  private status: { close(): Promise<void>; url: string } | undefined;
  private state: DaemonState;
  private lastRunStart: number | undefined;
  private lastRunEnd: number | undefined;
  private lastFullScan: number | undefined;
  private lastTick: number | undefined;
  private lastDirtyAt: number | undefined;
  private wake: (() => void) | undefined;
  private stopping = false;
  private running: AbortController | undefined;
  private staleAlerted = false;
  private seq = 0;
  private readonly now: () => number;

  constructor(private readonly o: DaemonOptions) {
    this.now = o.now ?? Date.now;
    this.state = {
      state: "idle", pid: process.pid, version: VERSION, startedAt: new Date(this.now()).toISOString(),
      dirtyPaths: 0, consecutiveFailures: 0, history: [],
    };
  }

  log(line: string): void {
    this.o.log(`${new Date(this.now()).toISOString()} ${this.redactor.redact(line)}`);
  }

  /** Loads the config and starts watching and serving; throws on a bad config. */
  async start(): Promise<void> {
    const config = await loadConfig(this.o.configPath);
    this.adoptHistory(config);
    // Before the watcher's initial scan, which takes minutes on a big tree: until the state
    // file names this process, health-check reports the previous daemon as stopped.
    this.persist(config);
    await this.apply(config);
    this.log(`vaultik ${VERSION} daemon started (pid ${process.pid})`);
  }

  /** Runs until stop(); resolves when the loop has ended. */
  async run(): Promise<void> {
    const staleTimer = setInterval(() => void this.checkStale(), STALE_CHECK_MS);
    staleTimer.unref();
    try {
      while (!this.stopping) {
        const plan = this.plan();
        this.state.nextRun = plan ? new Date(plan.at).toISOString() : undefined;
        this.persist();
        const wait = plan ? plan.at - this.now() : Infinity;
        if (wait > 0) {
          await this.sleep(wait);
          continue; // re-plan: a dirty event, a reload or a stop may have changed things
        }
        await this.backup(plan!);
        void this.checkStale();
      }
    } finally {
      clearInterval(staleTimer);
      await this.shutdown();
    }
  }

  /** SIGTERM/SIGINT: interrupt the running backup (its post_backup still runs) and end the loop. */
  stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    this.state.state = "stopping";
    this.log("stopping");
    this.running?.abort();
    this.wake?.();
  }

  /** SIGHUP: load the config again; keep the old one if the new one is bad. */
  async reload(): Promise<void> {
    let next: Config;
    try {
      next = await loadConfig(this.o.configPath);
    } catch (err) {
      this.log(`reload failed, keeping the running config: ${errorMessage(err)}`);
      return;
    }
    await this.apply(next);
    this.log("config reloaded");
    this.wake?.();
  }

  private async apply(config: Config): Promise<void> {
    const previous = this.config as Config | undefined;
    this.config = config;
    for (const s of [config.store.kind === "s3" ? config.store.secretAccessKey : undefined, config.status?.token, config.alerts?.email?.password]) this.redactor.add(s);
    this.alerter = new Alerter({ ...config.alerts, log: (l) => this.log(l) });
    const { roots, exclude } = backupScope(config);
    await this.watcher?.close();
    this.watcher = config.schedule
      ? undefined
      : watchDirty(roots, exclude, { onDirty: () => this.onDirty(), log: (l) => this.log(l) });
    await this.watcher?.ready;
    if (JSON.stringify(previous?.status) !== JSON.stringify(config.status)) {
      await this.status?.close();
      this.status = undefined;
      if (config.status) {
        this.status = await startStatusServer({
          host: config.status.host,
          port: config.status.port,
          token: config.status.token,
          getState: () => this.snapshotState(),
          metrics: this.metrics,
          staleAfterMs: this.staleAfter(),
          log: (l) => this.log(l),
        });
        this.log(`status server listening on ${this.status.url}`);
      }
    }
  }

  get statusUrl(): string | undefined {
    return this.status?.url;
  }

  private staleAfter(config = this.config): number {
    return config.alerts?.staleAfter ?? 26 * 3600_000;
  }

  /** Without an alerts section nothing is sent, but the failing streak is still tracked. */
  private repeatAfter(): number {
    return this.config.alerts?.repeatAfter ?? 24 * 3600_000;
  }

  private onDirty(): void {
    this.lastDirtyAt = this.now();
    this.wake?.();
  }

  private plan(): PlannedRun | undefined {
    const c = this.config;
    const cron = c.schedule ? new Cron(c.schedule, { paused: true }) : undefined;
    return nextRun({
      now: this.now(),
      backupInterval: c.backupInterval,
      fullScanInterval: c.fullScanInterval,
      minTimeBetweenRun: c.minTimeBetweenRun,
      cron: cron ? (after) => cron.nextRun(after) : undefined,
      lastRunStart: this.lastRunStart,
      lastRunEnd: this.lastRunEnd,
      lastTick: this.lastTick,
      lastFullScan: this.lastFullScan,
      dirty: (this.watcher?.size ?? 0) > 0,
      lastDirtyAt: this.lastDirtyAt,
      consecutiveFailures: this.state.consecutiveFailures,
    });
  }

  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      // setTimeout cannot wait longer than 2^31-1 ms; waking early only means planning again.
      const timer = setTimeout(done, Math.min(ms, 2 ** 31 - 1));
      function done() {
        clearTimeout(timer);
        resolve();
      }
      this.wake = () => {
        this.wake = undefined;
        done();
      };
    });
  }

  private async backup(plan: PlannedRun): Promise<void> {
    const config = this.config;
    const run = this.newRun(plan.trigger);
    const dirty = this.watcher?.take() ?? new Set<string>();
    const abort = new AbortController();
    this.running = abort;
    this.lastRunStart = this.now();
    this.lastTick = plan.tick ?? this.lastTick;
    this.state.state = "running";
    this.state.current = { run, progress: { filesDone: 0, bytesDone: 0, currentPath: "" } };
    this.metrics.runStarted(run);
    this.log(`backup #${run.seq} started (${plan.trigger}${plan.full ? ", full scan" : `, ${dirty.size} changed path(s)`})`);
    const result = await runJob(config, {
      store: this.o.openStore(config),
      signal: abort.signal,
      dirty: plan.full ? undefined : { paths: dirty },
      log: (l) => this.log(l),
      onStart: (a) => {
        if (this.state.current) this.state.current.progress = a.progress;
      },
      hookEnv: { VAULTIK_RUN: String(run.seq) },
      configPath: this.o.configPath ?? "",
    });
    this.running = undefined;
    if (result.ok && plan.full) this.lastFullScan = this.lastRunStart;
    if (!result.ok) this.watcher?.restore(dirty);
    this.finishRun(run, result);
  }

  private newRun(trigger: RunTrigger): RunRecord {
    return {
      seq: ++this.seq, trigger, status: "running", started: new Date(this.now()).toISOString(),
      filesNew: 0, filesChanged: 0, filesUnchanged: 0, bytesRead: 0, bytesUploaded: 0, blobsUploaded: 0, errors: 0,
    };
  }

  private finishRun(started: RunRecord, result: JobResult): void {
    const end = this.now();
    this.lastRunEnd = end;
    const { state, run, alert } = recordRun(this.state, {
      run: started,
      result,
      end,
      repeatAfterMs: this.repeatAfter(),
      host: hostname(),
      stopping: this.stopping,
      redact: (text) => this.redactor.redact(text),
    });
    this.state = state;
    this.logRun(run, result);
    if (run.status === "success") this.staleAlerted = false;
    this.metrics.runFinished(run);
    this.persist();
    if (alert) void this.alerter.send(alert);
  }

  private logRun(run: RunRecord, result: JobResult): void {
    if (result.ok) {
      const summary = result.summary;
      this.log(
        `backup #${run.seq} saved snapshot ${summary.snapshotId}: ${summary.filesNew} new, ${summary.filesChanged} changed, ` +
          `${summary.filesUnchanged} unchanged, ${summary.bytesUploaded} bytes uploaded` +
          (summary.errors.length ? `; ${summary.errors.length} path(s) unreadable: ${summary.errors.slice(0, 5).map((e) => e.path).join(", ")}` : ""),
      );
    } else if (result.interrupted) {
      this.log(`backup #${run.seq} interrupted: the daemon is stopping; nothing it uploaded is referenced yet`);
    } else {
      this.log(`backup #${run.seq} failed: ${run.error}`);
    }
  }

  /**
   * Takes over the run history the previous daemon left in the state file, so that a restart
   * (which interrupts a run) does not make health checks forget the last success.
   */
  private adoptHistory(config: Config): void {
    let previous;
    try {
      previous = readStateFile(config.indexPath)?.state;
    } catch (err) {
      this.log(`ignoring an unreadable state file: ${errorMessage(err)}`);
      return;
    }
    if (!previous || !Array.isArray(previous.history)) return;
    Object.assign(this.state, {
      lastRun: previous.lastRun,
      lastSuccess: previous.lastSuccess,
      consecutiveFailures: previous.consecutiveFailures ?? 0,
      failureStreak: previous.failureStreak,
      history: previous.history.slice(0, HISTORY_SIZE),
    });
  }

  private async checkStale(): Promise<void> {
    const since = Date.parse(this.state.lastSuccess?.finished ?? this.state.startedAt);
    if (this.staleAlerted || this.now() - since <= this.staleAfter()) return;
    this.staleAlerted = true;
    const message = `no backup has succeeded on ${hostname()} since ${new Date(since).toISOString()}`;
    this.log(message);
    await this.alerter.send({ kind: "stale", message, host: hostname(), time: new Date(this.now()).toISOString() });
  }

  private snapshotState(): DaemonState {
    return { ...this.state, dirtyPaths: this.dirtyCount() };
  }

  /** The one count /status, /metrics and the state file show: the watcher's, read when asked. */
  private dirtyCount(): number {
    return this.watcher?.size ?? 0;
  }

  private persist(config = this.config): void {
    try {
      writeStateFile(config.indexPath, { state: this.snapshotState(), staleAfterMs: this.staleAfter(config), pidStartTime: ownStart });
    } catch (err) {
      this.log(`cannot write the state file: ${errorMessage(err)}`);
    }
  }

  private async shutdown(): Promise<void> {
    await this.watcher?.close();
    await this.status?.close();
    this.state.state = "stopped";
    this.persist();
    this.log("stopped");
  }
}
