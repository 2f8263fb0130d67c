import { Worker } from "node:worker_threads";
import Database from "better-sqlite3";
import { compiledWorker } from "../util/worker.js";

// better-sqlite3 builds SQLite with a 16 MB page cache for every connection and every attached
// file, and a backup holds several at once (the catalog, a pack worker's lookup connection, the
// snapshot being built, the previous snapshot, the files they attach): ~70-110 MB of a 256 MiB
// budget. What misses a smaller cache is read from the kernel's page cache, which costs far less
// than the memory (bench/README.md "SQLite page caches").

/** Page cache per connection and per attached file, in KiB. */
export const SQLITE_CACHE_KIB = 2048;

/** Opens a database with vaultik's cache size (in-memory databases keep every page whatever it is). */
export function openSqlite(path: string, options?: Database.Options): Database.Database {
  const db = new Database(path, options);
  try {
    if (path !== ":memory:") db.pragma(`cache_size = -${SQLITE_CACHE_KIB}`);
    db.pragma(`temp.cache_size = -${SQLITE_CACHE_KIB}`);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

/** ATTACH with vaultik's cache size: an attached file otherwise gets SQLite's compiled-in 16 MB. */
export function attachSqlite(conn: Database.Database, file: string, alias: string): void {
  conn.prepare(`ATTACH DATABASE ? AS ${alias}`).run(file);
  conn.pragma(`${alias}.cache_size = -${SQLITE_CACHE_KIB}`);
}

/** How long a copy waits for a source database a writer keeps locked (as a busy timeout would). */
const COPY_BUSY_MS = 10_000;

/**
 * Copies the database at `source` (an application's, being written to) into the new file
 * `dest` with SQLite's online backup API: a consistent image even while other processes write.
 * Each copy runs in one step under one read lock: copied in several, every commit between
 * steps would restart it, and a busy application would keep it from ever finishing.
 */
export async function copyLiveDatabase(source: string, dest: string): Promise<void> {
  // Read-only: a backup must not change the application's files (no checkpoint on close).
  const db = new Database(source, { readonly: true, fileMustExist: true });
  try {
    const deadline = Date.now() + COPY_BUSY_MS;
    for (;;) {
      const progress = await db.backup(dest, { progress: () => 0x7fffffff });
      // better-sqlite3 reports a first step that found the source locked (SQLITE_BUSY) as a
      // finished copy of 0 pages; only a database of no pages at all really is one.
      if (progress.totalPages > 0 || db.pragma("page_count", { simple: true }) === 0) return;
      if (Date.now() > deadline) throw new Error(`${source} stayed locked for ${COPY_BUSY_MS / 1000} s`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  } finally {
    db.close();
  }
}

/**
 * copyLiveDatabase on a worker thread (sqlite-copy-worker.ts), so the main thread goes on while
 * a large database is copied; in place where no compiled worker exists (tests run from source).
 * An abort stops the thread; `dest` may then be left half-written for the caller to remove.
 */
export async function copyLiveDatabaseOffThread(source: string, dest: string, signal?: AbortSignal): Promise<void> {
  signal?.throwIfAborted();
  const script = compiledWorker(import.meta.url, "./sqlite-copy-worker.js");
  if (!script) return copyLiveDatabase(source, dest);
  const worker = new Worker(script, { workerData: { source, dest } });
  try {
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => reject(signal?.reason);
      signal?.addEventListener("abort", onAbort, { once: true });
      worker.once("message", (m: { ok: boolean; message?: string }) => (m.ok ? resolve() : reject(new Error(m.message))));
      worker.once("error", reject);
      worker.once("exit", (code) => reject(new Error(`the copy thread exited with code ${code}`)));
    });
  } finally {
    await worker.terminate();
  }
}
