import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import { Catalog } from "../catalog/db.js";
import type { Config } from "../config.js";
import { Repository } from "../repo/repository.js";
import type { Store } from "../store/store.js";
import { Archiver, type BackupSummary, type StreamSource } from "./archiver.js";
import { makeExcluder, type Excluder } from "./exclude.js";
import { acquireLocalLock } from "./lock.js";
import { assertHeartbeatFresh, assertNotDoomed, startHeartbeat, syncCatalog, type Heartbeat } from "./prune-sync.js";
import { normalizeRoots, type DirtySet } from "./walker.js";

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
}

export async function runBackup(config: Config, options: RunBackupOptions): Promise<BackupSummary> {
  const workDir = `${config.indexPath}.d`;
  mkdirSync(dirname(config.indexPath), { recursive: true, mode: 0o700 });
  mkdirSync(workDir, { recursive: true, mode: 0o700 });
  const lock = acquireLocalLock(`${config.indexPath}.lock`);
  let catalog: Catalog | undefined;
  let heartbeat: Heartbeat | undefined;
  try {
    catalog = new Catalog(config.indexPath);
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
      workDir,
      host: options.host,
      signal: options.signal,
      streams: options.streams,
      dirty: options.dirty,
      beforeCommit: async (blobs) => {
        if (heartbeat) assertHeartbeatFresh(heartbeat, options.store);
        await assertNotDoomed(open, options.store, blobs, heartbeat?.started ?? Date.now(), { signal: options.signal });
      },
    });
    // Heartbeat first, then read prune notices: a prune that publishes in between sees us.
    heartbeat = await startHeartbeat(options.store, archiver.id, { signal: options.signal });
    await syncCatalog(catalog, options.store, { signal: options.signal });
    options.onStart?.(archiver);
    return await archiver.run();
  } finally {
    await heartbeat?.stop();
    catalog?.close();
    lock.release();
  }
}

/** The directories a backup of `config` walks and what it leaves out. */
export function backupScope(config: Config): { roots: string[]; exclude: Excluder } {
  const roots = normalizeRoots(config.sourceDirs);
  const i = config.indexPath;
  // Our own state changes during the run; backing it up would only ever capture it half-done.
  const own = [i, `${i}-wal`, `${i}-shm`, `${i}.lock`, `${i}.d`];
  return { roots, exclude: makeExcluder(config.exclude, roots, own) };
}
