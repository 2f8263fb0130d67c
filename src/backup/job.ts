import type { Store } from "../store/store.js";
import type { Archiver, BackupSummary } from "./archiver.js";
import { commandSource } from "./commands.js";
import { databaseSource } from "./databases/index.js";
import { runHook } from "./hooks.js";
import { runBackup, workDirOf } from "./run.js";
import type { JobSettings } from "./settings.js";
import type { DirtySet } from "./walker.js";
import { HookError, errorMessage } from "../errors.js";

// One backup as the config describes it, for the CLI and the daemon alike: pre_backup hook
// (its failure aborts the run, no snapshot), command and database sources streamed into the
// snapshot, then post_backup, which always runs, learns the outcome from its environment, and
// whose exit code is logged but never changes the run's status. The upload limit is the store's business: the
// caller passes a store already wrapped (cli/ builds stores).
//
// "Always" includes a run stopped by SIGTERM/SIGINT: pre_backup may have stopped a service that
// only post_backup starts again (restic-manager's rule: post hooks always run). So post_backup
// does not take the abort signal; hooks.timeout alone bounds it.

export interface JobOptions {
  /** Where the backup goes, with any upload limit already applied by whoever built it. */
  store: Store;
  signal?: AbortSignal;
  dirty?: DirtySet;
  log: (line: string) => void;
  /** What the user should see even when the run succeeds quietly (default: log). */
  warn?: (line: string) => void;
  onStart?: (archiver: Archiver) => void;
  /** Extra environment for hooks (VAULTIK_RUN, …). */
  hookEnv?: Record<string, string>;
  configPath: string;
  /** Host in the snapshot id (hostname: or the app's host); default os.hostname(). */
  host?: string;
}

/** `interrupted`: the signal stopped the run; the caller is shutting down, nothing failed. */
export type JobResult = { ok: true; summary: BackupSummary } | { ok: false; error: unknown; interrupted: boolean };

export type JobOutcome = "success" | "failure" | "interrupted";

export function outcomeOf(result: JobResult): JobOutcome {
  return result.ok ? "success" : result.interrupted ? "interrupted" : "failure";
}

export async function runJob(config: JobSettings, o: JobOptions): Promise<JobResult> {
  // Stopped before anything ran: no pre_backup, so nothing for post_backup to undo.
  if (o.signal?.aborted) return { ok: false, error: o.signal.reason, interrupted: true };
  let result: JobResult;
  try {
    await preHook(config, o);
    const summary = await runBackup(config, {
      store: o.store,
      host: o.host,
      signal: o.signal,
      dirty: o.dirty,
      streams: [
        ...config.commands.map((c) => commandSource(c, { log: o.log })),
        // The work directory runBackup makes and sweeps: sqlite's consistent copy goes there.
        ...(config.databases ?? []).map((d) => databaseSource(d, { log: o.log, spoolDir: workDirOf(config.indexPath) })),
      ],
      onStart: o.onStart,
      onWarning: o.warn ?? o.log,
    });
    result = { ok: true, summary };
  } catch (error) {
    result = { ok: false, error, interrupted: o.signal?.aborted === true };
  }
  await postHook(config, o, result);
  return result;
}

async function preHook(config: JobSettings, o: JobOptions): Promise<void> {
  const cmd = config.hooks?.preBackup;
  if (!cmd) return;
  const timeout = config.hooks!.timeout;
  const r = await runHook("pre_backup", cmd, {
    timeoutMs: timeout,
    env: { VAULTIK_CONFIG: o.configPath, ...o.hookEnv },
    log: o.log,
    signal: o.signal,
  });
  if (r.timedOut) throw new HookError("pre_backup", `pre_backup hook timed out after ${timeout} ms; no backup was made`);
  if (r.code !== 0) {
    throw new HookError("pre_backup", `pre_backup hook failed (${r.code === null ? `signal ${r.signal}` : `exit code ${r.code}`}); no backup was made`);
  }
}

async function postHook(config: JobSettings, o: JobOptions, result: JobResult): Promise<void> {
  const cmd = config.hooks?.postBackup;
  if (!cmd) return;
  try {
    const r = await runHook("post_backup", cmd, {
      timeoutMs: config.hooks!.timeout,
      env: {
        VAULTIK_CONFIG: o.configPath,
        VAULTIK_STATUS: outcomeOf(result),
        VAULTIK_SNAPSHOT_ID: result.ok ? result.summary.snapshotId : "",
        VAULTIK_ERROR: result.ok ? "" : result.interrupted ? "interrupted" : firstLine(result.error),
        ...o.hookEnv,
      },
      log: o.log,
    });
    o.log(`post_backup hook ${r.timedOut ? "timed out" : r.code === null ? `ended by signal ${r.signal}` : `exited with code ${r.code}`}`);
  } catch (err) {
    o.log(`post_backup hook could not run: ${errorMessage(err)}`);
  }
}

function firstLine(error: unknown): string {
  return ((error as Error)?.message ?? String(error)).split("\n")[0]!;
}
