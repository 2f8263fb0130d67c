import { hostname } from "node:os";
import { Cron } from "croner";
import { backupScope } from "../backup/run.js";
import { appJob, type AppConfig, type Config } from "../config/index.js";
import { nextRun, type PlannedRun } from "./scheduler.js";
import type { DaemonState } from "./state.js";
import { watchDirty, type DirtyWatcher } from "./watcher.js";

// What the daemon keeps per app (issue 19): its plan inputs, dirty set, history and failure
// streak. Apps share the daemon's one backup slot, so nothing here runs a backup; the daemon
// asks each runner when it is due and runs the earliest.

/** A snapshot of this app in the repository, as /backups/<app> lists it. */
export interface AppBackup {
  id: string;
  key: string;
  size: number;
  /** ms since the epoch, from the store's listing. */
  mtime: number;
}

export class AppRunner {
  /** The config as this app sees it: shared keys plus the app's job keys. */
  config!: Config;
  app!: AppConfig;
  state: DaemonState;
  lastRunStart: number | undefined;
  lastRunEnd: number | undefined;
  lastFullScan: number | undefined;
  lastTick: number | undefined;
  lastDirtyAt: number | undefined;
  staleAlerted = false;
  watcher: DirtyWatcher | undefined;
  /** This app's snapshots in the repository, refreshed after each of its runs; newest first. */
  backups: AppBackup[] = [];

  constructor(shared: Config, app: AppConfig, initial: DaemonState) {
    this.state = initial;
    this.configure(shared, app);
  }

  get name(): string {
    return this.app.name;
  }

  /** The host its snapshot ids, alerts and status name. */
  get host(): string {
    return this.app.host ?? hostname();
  }

  configure(shared: Config, app: AppConfig): void {
    this.app = app;
    this.config = appJob(shared, app);
  }

  /** (Re)starts watching its source dirs; a scheduled (cron) app, or one without source dirs, needs none. */
  async watch(onDirty: () => void, log: (line: string) => void): Promise<void> {
    await this.watcher?.close();
    const { roots, exclude } = backupScope(this.config);
    this.watcher = this.config.schedule || roots.length === 0 ? undefined : watchDirty(roots, exclude, { onDirty, log });
    await this.watcher?.ready;
  }

  get dirtyCount(): number {
    return this.watcher?.size ?? 0;
  }

  plan(now: number): PlannedRun | undefined {
    const c = this.config;
    const cron = c.schedule ? new Cron(c.schedule, { paused: true }) : undefined;
    return nextRun({
      now,
      backupInterval: c.backupInterval,
      fullScanInterval: c.fullScanInterval,
      minTimeBetweenRun: c.minTimeBetweenRun,
      cron: cron ? (after) => cron.nextRun(after) : undefined,
      lastRunStart: this.lastRunStart,
      lastRunEnd: this.lastRunEnd,
      lastTick: this.lastTick,
      lastFullScan: this.lastFullScan,
      // What commands and databases output changes unseen by any watcher: an app with them is
      // always due at backup_interval, not only at full_scan_interval.
      dirty: this.dirtyCount > 0 || this.config.commands.length + this.config.databases.length > 0,
      lastDirtyAt: this.lastDirtyAt,
      consecutiveFailures: this.state.consecutiveFailures,
    });
  }
}
