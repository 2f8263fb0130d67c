import { runJob, type JobResult } from "../backup/job.js";
import { appsOf, loadConfig, type Config } from "../config/index.js";
import { Repository } from "../repo/repository.js";
import { VERSION } from "../version.js";
import { Alerter } from "./alerts.js";
import { DaemonMetrics } from "./metrics.js";
import { Redactor } from "./redact.js";
import { recordRun } from "./record-run.js";
import { AppRunner } from "./app-runner.js";
import type { PlannedRun } from "./scheduler.js";
import { HISTORY_SIZE, overallState, type DaemonState, type RunRecord, type RunTrigger } from "./state.js";
import { readStateFile, writeStateFile } from "./state-file.js";
import { startStatusServer, type AppStatus } from "./status-server.js";
import type { Store } from "../store/store.js";
import { ownStart } from "../util/process.js";
import { errorMessage } from "../errors.js";

// The long-running `backup --daemon`: watches, schedules, runs backups with hooks and command
// sources, serves status and metrics, and alerts. One failed run never stops it; SIGTERM ends
// it cleanly (a running backup is interrupted: nothing it wrote is referenced, and its
// post_backup hook still runs), SIGHUP reloads the config (a bad one is reported and the old one
// kept). The run history lives in the state file beside the index, so a restart keeps it.
//
// With `apps:` (issue 19) each app has its own plan, dirty set, history and failure streak
// (app-runner.ts); one backup runs at a time, the earliest due app first (ties in config order),
// and the others wait. A config without apps is the one app "default", and its state, status
// and state file look exactly as before apps existed.

export interface DaemonOptions {
  /** Undefined: the config comes from VAULTIK_* variables alone, read again on SIGHUP. */
  configPath?: string;
  /** One log line (already redacted by the daemon). */
  log: (line: string) => void;
  /** The store one run writes to, upload limit included (a fresh budget per run). */
  openStore: (config: Config) => Store;
  now?: () => number;
  /**
   * Waits `ms`, or less when `wake` aborts (a dirty path, a reload, a stop). Default a timer;
   * tests pass one that moves their clock (`now`) instead, so hours of schedule take no time.
   */
  sleep?: (ms: number, wake: AbortSignal) => Promise<void>;
}

const STALE_CHECK_MS = 60_000;

export class Daemon {
  private config!: Config;
  private readonly redactor = new Redactor([]);
  private readonly metrics = new DaemonMetrics({ dirtyPaths: () => this.dirtyCount() });
  private alerter!: Alerter;
  private status: { close(): Promise<void>; url: string } | undefined;
  private apps: AppRunner[] = [];
  private readonly base: Pick<DaemonState, "state" | "pid" | "version" | "startedAt">;
  private wake: (() => void) | undefined;
  private stopping = false;
  private running: AbortController | undefined;
  private seq = 0;
  private readonly now: () => number;

  constructor(private readonly o: DaemonOptions) {
    this.now = o.now ?? Date.now;
    this.base = { state: "idle", pid: process.pid, version: VERSION, startedAt: new Date(this.now()).toISOString() };
  }

  private freshState(): DaemonState {
    return { ...this.base, dirtyPaths: 0, consecutiveFailures: 0, history: [] };
  }

  /** Several apps: their runs, alerts and metrics name the app. */
  private get multi(): boolean {
    return this.config.apps !== undefined;
  }

  log(line: string): void {
    this.o.log(`${new Date(this.now()).toISOString()} ${this.redactor.redact(line)}`);
  }

  /** Loads the config and starts watching and serving; throws on a bad config. */
  /** Settles when start()'s listing of every app's snapshots has finished; never rejects. */
  listed: Promise<void> = Promise.resolve();

  async start(): Promise<void> {
    const config = await loadConfig(this.o.configPath);
    this.config = config;
    this.apps = appsOf(config).map((app) => new AppRunner(config, app, this.freshState()));
    this.adoptHistory(config);
    // Before the watcher's initial scan, which takes minutes on a big tree: until the state
    // file names this process, health-check reports the previous daemon as stopped.
    this.persist(config);
    await this.apply(config);
    // What earlier daemons (or one-shot backups) stored, so /backups/<app> and vaultik_snapshots
    // are right from the start rather than after each app's first run here. Not awaited: an
    // unreachable bucket would hold the start up for the whole retry budget.
    this.listed = this.refreshBackups(...this.apps);
    this.log(`vaultik ${VERSION} daemon started (pid ${process.pid})`);
  }

  /** Runs until stop(); resolves when the loop has ended. */
  async run(): Promise<void> {
    const staleTimer = setInterval(() => void this.checkStale(), STALE_CHECK_MS);
    staleTimer.unref();
    try {
      while (!this.stopping) {
        const due = this.plan();
        this.persist();
        const wait = due ? due.plan.at - this.now() : Infinity;
        if (wait > 0) {
          await this.sleep(wait);
          continue; // re-plan: a dirty event, a reload or a stop may have changed things
        }
        await this.backup(due!.runner, due!.plan);
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
    this.base.state = "stopping";
    for (const a of this.apps) a.state.state = "stopping";
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
    const previous = this.status === undefined ? undefined : this.config;
    this.config = config;
    for (const s of [config.store.kind === "s3" ? config.store.secretAccessKey : undefined, config.status?.token, config.alerts?.email?.password]) this.redactor.add(s);
    this.alerter = new Alerter({ ...config.alerts, log: (l) => this.log(l) });
    // A reload keeps what each app (by name) has done: its history, streak and timing.
    const kept = new Map(this.apps.map((a) => [a.name, a]));
    this.apps = appsOf(config).map((app) => {
      const runner = kept.get(app.name) ?? new AppRunner(config, app, this.freshState());
      kept.delete(app.name);
      runner.configure(config, app);
      this.metrics.declareApp(app.name);
      return runner;
    });
    for (const gone of kept.values()) await gone.watcher?.close();
    for (const runner of this.apps) await runner.watch(() => this.onDirty(runner), (l) => this.log(l));
    if (previous === undefined || JSON.stringify(previous.status) !== JSON.stringify(config.status)) {
      await this.status?.close();
      this.status = undefined;
      if (config.status) {
        this.status = await startStatusServer({
          host: config.status.host,
          port: config.status.port,
          token: config.status.token,
          getState: () => this.snapshotState(),
          getApp: (name) => this.appStatus(name),
          metrics: this.metrics,
          staleAfterMs: this.staleAfter(),
          now: this.now,
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

  private onDirty(runner: AppRunner): void {
    runner.lastDirtyAt = this.now();
    this.wake?.();
  }

  /** The earliest due app (ties: config order); records each app's next run on the way. */
  private plan(): { runner: AppRunner; plan: PlannedRun } | undefined {
    let due: { runner: AppRunner; plan: PlannedRun } | undefined;
    for (const runner of this.apps) {
      const plan = runner.plan(this.now());
      runner.state.nextRun = plan ? new Date(plan.at).toISOString() : undefined;
      if (plan && (due === undefined || plan.at < due.plan.at)) due = { runner, plan };
    }
    return due;
  }

  private sleep(ms: number): Promise<void> {
    const wake = new AbortController();
    this.wake = () => {
      this.wake = undefined;
      wake.abort();
    };
    return (this.o.sleep ?? timerSleep)(ms, wake.signal);
  }

  private async backup(runner: AppRunner, plan: PlannedRun): Promise<void> {
    const config = runner.config;
    const run = this.newRun(plan.trigger, runner);
    const dirty = runner.watcher?.take() ?? new Set<string>();
    const abort = new AbortController();
    this.running = abort;
    runner.lastRunStart = this.now();
    runner.lastTick = plan.tick ?? runner.lastTick;
    runner.state.state = "running";
    this.base.state = "running";
    runner.state.current = { run, progress: { filesDone: 0, bytesDone: 0, currentPath: "" } };
    this.metrics.runStarted(run);
    const what = this.multi ? ` of ${runner.name}` : "";
    this.log(`backup #${run.seq}${what} started (${plan.trigger}${plan.full ? ", full scan" : `, ${dirty.size} changed path(s)`})`);
    const result = await runJob(config, {
      store: this.o.openStore(config),
      signal: abort.signal,
      dirty: plan.full ? undefined : { paths: dirty },
      log: (l) => this.log(l),
      onStart: (a) => {
        if (runner.state.current) runner.state.current.progress = a.progress;
      },
      hookEnv: { VAULTIK_RUN: String(run.seq), VAULTIK_APP: runner.name },
      configPath: this.o.configPath ?? "",
      host: runner.app.host,
    });
    this.running = undefined;
    if (result.ok && plan.full) runner.lastFullScan = runner.lastRunStart;
    if (!result.ok) runner.watcher?.restore(dirty);
    this.finishRun(runner, run, result);
    if (result.ok) await this.refreshBackups(runner);
  }

  /** Lists the apps' snapshots (one listing) for /backups/<app> and vaultik_snapshots; best effort. */
  private async refreshBackups(...runners: AppRunner[]): Promise<void> {
    const first = runners[0];
    if (first === undefined) return;
    try {
      const all = await new Repository(this.o.openStore(first.config), first.config.indexPrefix).listSnapshots();
      for (const runner of runners) {
        const host = runner.host;
        runner.backups = all.filter((s) => s.host === host).reverse().map((s) => ({ id: s.id, key: s.key, size: s.size, mtime: s.mtime }));
        this.metrics.setSnapshots(runner.name, runner.backups.length);
      }
    } catch (err) {
      this.log(`cannot list the snapshots of ${runners.map((r) => r.name).join(", ")}: ${errorMessage(err)}`);
    }
  }

  private newRun(trigger: RunTrigger, runner: AppRunner): RunRecord {
    return {
      seq: ++this.seq, trigger, status: "running", started: new Date(this.now()).toISOString(),
      filesNew: 0, filesChanged: 0, filesUnchanged: 0, bytesRead: 0, bytesUploaded: 0, blobsUploaded: 0, errors: 0,
      ...(this.multi ? { app: runner.name } : {}),
    };
  }

  private finishRun(runner: AppRunner, started: RunRecord, result: JobResult): void {
    const end = this.now();
    runner.lastRunEnd = end;
    const { state, run, alert } = recordRun(runner.state, {
      run: started,
      result,
      end,
      repeatAfterMs: this.repeatAfter(),
      host: runner.host,
      stopping: this.stopping,
      redact: (text) => this.redactor.redact(text),
    });
    runner.state = state;
    this.base.state = this.stopping ? "stopping" : "idle";
    this.logRun(run, result);
    if (run.status === "success") runner.staleAlerted = false;
    this.metrics.runFinished(run, runner.name);
    this.persist();
    if (alert) void this.alerter.send(this.multi ? { ...alert, app: runner.name } : alert);
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
    let previous: DaemonState | undefined;
    try {
      previous = readStateFile(config.indexPath)?.state;
    } catch (err) {
      this.log(`ignoring an unreadable state file: ${errorMessage(err)}`);
      return;
    }
    for (const runner of this.apps) {
      // Without apps the state file's top level is the one app's, as before apps existed.
      const own = this.multi ? previous?.apps?.[runner.name] : previous;
      if (!own || !Array.isArray(own.history)) continue;
      Object.assign(runner.state, {
        lastRun: own.lastRun,
        lastSuccess: own.lastSuccess,
        consecutiveFailures: own.consecutiveFailures ?? 0,
        failureStreak: own.failureStreak,
        history: own.history.slice(0, HISTORY_SIZE),
      });
    }
  }

  private async checkStale(): Promise<void> {
    for (const runner of this.apps) {
      const since = Date.parse(runner.state.lastSuccess?.finished ?? this.base.startedAt);
      if (runner.staleAlerted || this.now() - since <= this.staleAfter()) continue;
      runner.staleAlerted = true;
      const what = this.multi ? `of ${runner.name} ` : "";
      const message = `no backup ${what}has succeeded on ${runner.host} since ${new Date(since).toISOString()}`;
      this.log(message);
      const alert = { kind: "stale" as const, message, host: runner.host, time: new Date(this.now()).toISOString() };
      await this.alerter.send(this.multi ? { ...alert, app: runner.name } : alert);
    }
  }

  /** Without apps: the one app's state, exactly as before apps existed. */
  private snapshotState(): DaemonState {
    if (!this.multi) {
      const only = this.apps[0]!;
      return { ...only.state, ...this.base, dirtyPaths: only.dirtyCount };
    }
    return overallState(this.base, new Map(this.apps.map((a) => [a.name, { ...a.state, dirtyPaths: a.dirtyCount }])));
  }

  private appStatus(name: string): AppStatus | undefined {
    const runner = this.apps.find((a) => a.name === name);
    if (!runner) return undefined;
    return { name, host: runner.host, state: { ...runner.state, dirtyPaths: runner.dirtyCount }, backups: runner.backups };
  }

  /** The one count /status, /metrics and the state file show: the watchers', read when asked. */
  private dirtyCount(): number {
    return this.apps.reduce((n, a) => n + a.dirtyCount, 0);
  }

  private persist(config = this.config): void {
    try {
      writeStateFile(config.indexPath, { state: this.snapshotState(), staleAfterMs: this.staleAfter(config), pidStartTime: ownStart });
    } catch (err) {
      this.log(`cannot write the state file: ${errorMessage(err)}`);
    }
  }

  private async shutdown(): Promise<void> {
    for (const runner of this.apps) await runner.watcher?.close();
    await this.status?.close();
    this.base.state = "stopped";
    for (const runner of this.apps) runner.state.state = "stopped";
    this.persist();
    this.log("stopped");
  }
}

function timerSleep(ms: number, wake: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    // setTimeout cannot wait longer than 2^31-1 ms; waking early only means planning again.
    const timer = setTimeout(done, Math.min(ms, 2 ** 31 - 1));
    wake.addEventListener("abort", done, { once: true });
    function done() {
      clearTimeout(timer);
      wake.removeEventListener("abort", done);
      resolve();
    }
  });
}
