import type { Command } from "commander";
import type { BackupSummary } from "../backup/archiver.js";
import type { Archiver } from "../backup/archiver.js";
import { runJob } from "../backup/job.js";
import { backupScope } from "../backup/run.js";
import { scanTotals } from "../backup/walker.js";
import { appJob, appsOf, findApp, loadConfig, type AppConfig, type Config } from "../config/index.js";
import { UsageError } from "../errors.js";
import { limitUploads } from "../store/limit.js";
import type { Store } from "../store/store.js";
import { formatBytes, formatDuration } from "../util/units.js";
import { storeFromConfig } from "./context.js";
import { EXIT, messageFor } from "./exit.js";
import type { Io } from "./io.js";
import { startProgress } from "./progress.js";

export interface BackupFlags {
  cron?: boolean;
  json?: boolean;
  daemon?: boolean;
  app?: string;
}

export function registerBackup(program: Command, io: Io, daemon: (config: string | undefined, flags: BackupFlags) => Promise<number>): void {
  program
    .command("backup")
    .description("back up what CONFIG names (source_dirs, databases, commands; each of its apps) to its repository")
    // Optional for containers: the whole config can come from VAULTIK_* variables instead.
    .argument("[config]", "YAML config file (default: none, every key from its VAULTIK_* variable)")
    .option("--cron", "print nothing on success; a short error on stderr and exit 1 on failure")
    .option("--json", "print a JSON summary on stdout")
    .option("--daemon", "stay running: watch source_dirs and back up on the configured schedule")
    .option("--app <name>", "back up only this app of the config's apps: list")
    .action(async (configPath: string | undefined, flags: BackupFlags) => {
      io.exitCode = flags.daemon ? await daemon(configPath, flags) : await backupOnce(configPath, flags, io);
    });
}

export async function backupOnce(configPath: string | undefined, flags: BackupFlags, io: Io): Promise<number> {
  const config = await loadConfig(configPath);
  const apps = appsOf(config);
  const chosen = flags.app === undefined ? apps : [findApp(apps, flags.app) ?? unknownApp(flags.app, apps)];
  // A config without apps: prints and exits exactly as before apps existed.
  if (!config.apps) return reportOne(await backupApp(config, chosen[0]!, configPath, flags, io), flags, io);
  const results: AppResult[] = [];
  for (const app of chosen) {
    try {
      results.push({ app, summary: await backupApp(config, app, configPath, flags, io) });
    } catch (err) {
      if ((err as Error | undefined)?.name === "AbortError" || (err as Error | undefined)?.name === "InterruptedError") throw err;
      results.push({ app, error: err });
      io.err(`vaultik: app ${app.name}: ${messageFor(err)}`);
    }
  }
  return reportApps(results, flags, io);
}

interface AppResult {
  app: AppConfig;
  summary?: BackupSummary;
  error?: unknown;
}

function unknownApp(name: string, apps: readonly AppConfig[]): never {
  throw new UsageError("--app", `${JSON.stringify(name)}: no such app; the config has ${apps.map((a) => a.name).join(", ")}`);
}

/** Several apps: exit 1 if any failed, 3 if all ran but some paths were unreadable. */
function reportApps(results: readonly AppResult[], flags: BackupFlags, io: Io): number {
  if (flags.json) {
    const apps = results.map(({ app, summary, error }) =>
      summary ? { app: app.name, host: app.host, ok: true, ...summary } : { app: app.name, host: app.host, ok: false, error: messageFor(error) });
    io.out(JSON.stringify({ apps }, null, 2));
  } else if (!flags.cron) {
    for (const r of results) if (r.summary) io.err(`app ${r.app.name}: ${describe(r.summary)}`);
  }
  for (const r of results) if (r.summary) reportUnreadable(r.summary, io);
  if (results.some((r) => r.error !== undefined)) return EXIT.FAILURE;
  return results.some((r) => (r.summary?.errors.length ?? 0) > 0) ? EXIT.PARTIAL : EXIT.OK;
}

function reportOne(summary: BackupSummary, flags: BackupFlags, io: Io): number {
  if (flags.json) io.out(JSON.stringify(summary, null, 2));
  else if (!flags.cron) io.err(describe(summary));
  return reportUnreadable(summary, io) ? EXIT.PARTIAL : EXIT.OK;
}

function reportUnreadable(summary: BackupSummary, io: Io): boolean {
  if (summary.errors.length === 0) return false;
  const shown = summary.errors.slice(0, 20).map((e) => `  ${e.path}: ${e.message}`);
  if (summary.errors.length > 20) shown.push(`  … and ${summary.errors.length - 20} more`);
  io.err(`vaultik: snapshot ${summary.snapshotId} was written, but ${summary.errors.length} path(s) could not be read:\n${shown.join("\n")}`);
  return true;
}

/** One app's backup with progress, hooks and --cron's quiet; throws what failed it. */
async function backupApp(shared: Config, app: AppConfig, configPath: string | undefined, flags: BackupFlags, io: Io): Promise<BackupSummary> {
  const config = appJob(shared, app);
  const abort = new AbortController();
  const stopSignals = io.onInterrupt(() => abort.abort());
  let archiver: Archiver | undefined;
  let totals: { files: number; bytes: number } | undefined;
  const quiet = flags.cron || flags.json;
  const logged: string[] = [];
  const { roots, exclude } = backupScope(config);
  if (!quiet && io.stderr.isTTY) {
    void scanTotals(roots, exclude, abort.signal).then((t) => (totals = t), () => {});
  }
  const stopProgress = quiet
    ? () => {}
    : startProgress("backup", {
        files: () => archiver?.progress.filesDone ?? 0,
        bytes: () => archiver?.progress.bytesDone ?? 0,
        totals: () => totals,
      }, io.stderr);
  let summary: BackupSummary;
  try {
    const result = await runJob(config, {
      store: backupStore(config),
      signal: abort.signal,
      onStart: (a) => (archiver = a),
      // Hook and command output is part of what --cron keeps quiet only when all went well.
      log: (line) => (quiet ? logged.push(line) : io.err(line)),
      // A replaced index is news even under --cron: it may mean a failing disk.
      warn: (line) => io.err(`vaultik: warning: ${line}`),
      configPath: configPath ?? "",
      host: app.host,
    });
    if (!result.ok) {
      if (flags.cron) for (const l of logged) io.err(l);
      throw result.error;
    }
    summary = result.summary;
  } finally {
    stopProgress();
    stopSignals();
  }
  return summary;
}

/** The store a backup of `config` writes to: all its uploads share the one `limit_upload` budget. */
export function backupStore(config: Config): Store {
  const store = storeFromConfig(config);
  return config.limitUpload ? limitUploads(store, config.limitUpload) : store;
}

function describe(s: BackupSummary): string {
  const files = `${s.filesNew} new, ${s.filesChanged} changed, ${s.filesUnchanged} unchanged`;
  const lines = [
    `snapshot ${s.snapshotId} saved`,
    `  files:    ${files}; ${s.dirs} directories, ${s.symlinks} symlinks` +
      `${s.special > 0 ? `, ${s.special} FIFOs/devices` : ""}${s.hardLinks > 0 ? `, ${s.hardLinks} hard links` : ""}` +
      `${s.sockets > 0 ? `; ${s.sockets} sockets skipped` : ""}`,
    `  read:     ${formatBytes(s.bytesRead)}, new data ${formatBytes(s.bytesNew)}`,
    `  uploaded: ${formatBytes(s.bytesUploaded - s.snapshotSize)} in ${s.blobsUploaded} blob(s) + snapshot ${formatBytes(s.snapshotSize)}`,
    `  took:     ${formatDuration(s.durationMs)}`,
  ];
  if (s.changedDuringBackup.length > 0) {
    lines.push(`  changed while read (stored as read, re-read next time): ${s.changedDuringBackup.slice(0, 10).join(", ")}`);
  }
  return lines.join("\n");
}
