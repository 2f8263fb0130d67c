import { readdirSync, rmSync, statfsSync } from "node:fs";
import { dirname, join } from "node:path";
import { damageCode, damagedDuringRun, damageWarning, openCheckedCatalog } from "../catalog/damage.js";
import type { Catalog } from "../catalog/db.js";
import { LocalStateError, VaultikError, errorMessage } from "../errors.js";
import { Repository } from "../repo/repository.js";
import type { Store } from "../store/store.js";
import { makeDirsSync } from "../util/mkdir.js";
import { Archiver, type BackupSummary, type StreamSource } from "./archiver.js";
import { makeExcluder, type Excluder } from "./exclude.js";
import { acquireLocalLock } from "./lock.js";
import { assertHeartbeatFresh, assertNotDoomed, startHeartbeat, syncCatalog, type Heartbeat } from "./prune-sync.js";
import type { BackupSettings } from "./settings.js";
import { normalizeRoots, type DirtySet } from "./walker.js";

export type { BackupSettings } from "./settings.js";

// Everything one backup of a config needs around the archiver: the lock, the catalog, the work
// directory, automatic excludes. Shared by the CLI and the daemon.

export interface RunBackupOptions {
  store: Store;
  signal?: AbortSignal;
  host?: string;
  streams?: readonly StreamSource[];
  /** Paths changed since the last run (daemon): walk only those, trust the catalog elsewhere. */
  dirty?: DirtySet;
  /** Lets the caller watch progress (the archiver exists only during the run). */
  onStart?: (archiver: Archiver) => void;
  /** Named points where tests run a prune to force each interleaving of docs/PRUNE.md. */
  hooks?: RunHooks;
  /** Something the user should know although the run goes on (a damaged index was replaced). */
  onWarning?: (message: string) => void;
  /** The clock that names a damaged index moved aside. */
  now?: () => Date;
}

export interface RunHooks {
  /** The first heartbeat is stored; prune notices are not read yet. */
  afterHeartbeat?: () => Promise<void>;
  /** Every blob is uploaded; runs before the last notice check and the snapshot upload. */
  beforeCommit?: (blobs: readonly string[]) => Promise<void>;
}

/** Spool files and the snapshot under construction: beside the index, swept at each run's start. */
export function workDirOf(indexPath: string): string {
  return `${indexPath}.d`;
}

export async function runBackup(config: BackupSettings, options: RunBackupOptions): Promise<BackupSummary> {
  const workDir = workDirOf(config.indexPath);
  makeStateDirs(config.indexPath, workDir);
  let lock: ReturnType<typeof acquireLocalLock>;
  try {
    lock = acquireLocalLock(`${config.indexPath}.lock`);
  } catch (err) {
    throw explainLocalFailure(err, config.indexPath);
  }
  let catalog: Catalog | undefined;
  let heartbeat: Heartbeat | undefined;
  try {
    // We hold the lock: whatever a run left in the work directory is a dead run's.
    sweepWorkDir(workDir);
    const checked = openCheckedCatalog(config.indexPath, options.now?.());
    catalog = checked.catalog;
    if (checked.damage) options.onWarning?.(damageWarning(config.indexPath, checked.damage));
    const open = catalog;
    const repo = new Repository(options.store, config.indexPrefix);
    const { roots, exclude } = backupScope(config);
    const archiver = new Archiver({
      repo,
      catalog,
      recipients: config.recipients,
      sourceDirs: roots,
      exclude,
      chunkSize: config.chunkSize,
      blobSizeLimit: config.blobSizeLimit,
      memoryLimit: config.memoryLimit,
      workDir,
      host: options.host,
      signal: options.signal,
      streams: options.streams,
      dirty: options.dirty,
      beforeCommit: async (blobs) => {
        await options.hooks?.beforeCommit?.(blobs);
        if (heartbeat) assertHeartbeatFresh(heartbeat, repo);
        await assertNotDoomed(open, repo, blobs, heartbeat?.started ?? Date.now(), { signal: options.signal });
      },
    });
    // Heartbeat first, then read prune notices: a prune that publishes in between sees us.
    heartbeat = await startHeartbeat(repo, archiver.id, { signal: options.signal });
    await options.hooks?.afterHeartbeat?.();
    await syncCatalog(catalog, repo, { signal: options.signal });
    options.onStart?.(archiver);
    return await archiver.run();
  } catch (err) {
    const code = damageCode(err);
    if (code === undefined) throw explainLocalFailure(err, config.indexPath);
    // Damage seen mid-run: the next run starts a new index instead of failing the same way.
    catalog?.close();
    throw damagedDuringRun(config.indexPath, code, err, options.now?.());
  } finally {
    await heartbeat?.stop();
    catalog?.close();
    sweepWorkDir(workDir);
    lock.release();
  }
}

/**
 * The index's folder and work directory, private (the index lists every backed-up path). A
 * place where they cannot be made (under /proc, a file in the way) is named, not retried.
 */
function makeStateDirs(indexPath: string, workDir: string): void {
  try {
    makeDirsSync(workDir, 0o700);
  } catch (err) {
    throw new LocalStateError(
      indexPath,
      `cannot create the folder of vaultik's local index (${errorMessage(err)}); set index_path to a writable place`,
      { cause: err },
    );
  }
}

/** Snapshot databases under construction and ciphertext spools: only ever one run's, this one's. */
function sweepWorkDir(workDir: string): void {
  let names: string[];
  try {
    names = readdirSync(workDir);
  } catch {
    return;
  }
  for (const name of names) {
    if (/^snapshot-.*\.sqlite(-journal|-wal|-shm)?$/.test(name) || name === "spool") {
      rmSync(join(workDir, name), { recursive: true, force: true });
    }
  }
}

/**
 * A failure to write the local index or its work directory names the index, and says when its
 * disk is full, instead of a bare "SQLITE_FULL", "SQLITE_IOERR_SHMSIZE" or "ENOSPC".
 */
function explainLocalFailure(err: unknown, indexPath: string): unknown {
  if (err instanceof VaultikError) return err;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return err;
  const sqlite = code === "SQLITE_FULL" || code.startsWith("SQLITE_IOERR") || code === "SQLITE_CANTOPEN";
  if (!sqlite && !DISK_FULL.has(code)) return err;
  const path = (err as { path?: unknown }).path;
  const where = typeof path === "string" ? path : indexPath;
  const full = DISK_FULL.has(code) || code === "SQLITE_FULL" || freeBytes(dirname(indexPath)) < LOW_SPACE;
  const what = full ? `the disk holding vaultik's local index is full (${code})` : `cannot write vaultik's local index (${code}: ${errorMessage(err)})`;
  return new LocalStateError(where, `${what}; nothing was committed. ${full ? "Free space there" : "Fix that"} and run the backup again`, { cause: err });
}

const DISK_FULL = new Set(["ENOSPC", "EDQUOT"]);
/** Below this, an I/O error of SQLite's is taken for a full disk (it reports ENOSPC in many ways). */
const LOW_SPACE = 1 << 20;

function freeBytes(dir: string): number {
  try {
    const fs = statfsSync(dir);
    return fs.bavail * fs.bsize;
  } catch {
    return Number.POSITIVE_INFINITY;
  }
}

/** The directories a backup with these settings walks and what it leaves out. */
export function backupScope(config: BackupSettings): { roots: string[]; exclude: Excluder } {
  const roots = normalizeRoots(config.sourceDirs);
  const i = config.indexPath;
  // Our own state changes during the run; backing it up would only ever capture it half-done.
  const own = [i, `${i}-wal`, `${i}-shm`, `${i}.lock`, `${i}.d`];
  return { roots, exclude: makeExcluder(config.exclude, roots, own) };
}
