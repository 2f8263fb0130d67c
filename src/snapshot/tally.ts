import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import type { SnapshotReader } from "./read.js";

// The distinct chunks and blobs of many snapshots, counted in an on-disk SQLite database in a
// private temp directory: 100 snapshots of millions of chunks would not fit in a JavaScript Set,
// and the set operations run in SQLite's C, not row by row in JavaScript.

export interface Bytes {
  chunks: number;
  raw: number;
  /** Stored bytes: the lengths of the zstd frames whose first chunk is among them (SnapshotReader.usedChunksSql). */
  stored: number;
}

/** What one snapshot holds, added and shares, in chunks. */
export interface SnapshotTally {
  files: number;
  /** Sum of the file entries' sizes (holes included, each hard link counted). */
  logical: number;
  /** Its distinct chunks. */
  total: Bytes;
  /** Chunks no snapshot added before it (in time order) references. */
  added: Bytes;
  /** Chunks some other snapshot references too. */
  shared: Bytes;
}

export class ChunkTally {
  readonly #db: Database.Database;
  readonly #dir: string;
  readonly #totals = new Map<number, { files: number; logical: number; total: Bytes }>();

  private constructor(dir: string) {
    this.#dir = dir;
    this.#db = new Database(join(dir, "tally.sqlite"));
    // A scratch database: nothing to recover after a crash, so no journal and no fsync.
    this.#db.pragma("journal_mode = OFF");
    this.#db.pragma("synchronous = OFF");
    // 64 MiB of page cache, whatever the number of chunks: the rest stays on disk.
    this.#db.pragma("cache_size = -65536");
    this.#db.exec(`
      CREATE TABLE chunks (hash BLOB PRIMARY KEY, raw INTEGER NOT NULL, stored REAL NOT NULL, first INTEGER NOT NULL, refs INTEGER NOT NULL) WITHOUT ROWID;
      CREATE TABLE blobs (name TEXT PRIMARY KEY) WITHOUT ROWID;`);
  }

  /** A tally in a fresh private temp directory; close() removes it. */
  static async open(): Promise<ChunkTally> {
    const dir = await mkdtemp(join(tmpdir(), "vaultik-stats-"));
    try {
      return new ChunkTally(dir);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  /** Counts a snapshot's chunks and blobs; `order` is its place in time, snapshots come oldest first. */
  add(reader: SnapshotReader, order: number): void {
    reader.attachTo(this.#db, "snap");
    try {
      const { sql, args } = reader.usedChunksSql("snap");
      this.#db.transaction(() => {
        this.#db
          .prepare(`INSERT INTO chunks SELECT hash, raw, stored, ?, 1 FROM (${sql}) WHERE true ON CONFLICT (hash) DO UPDATE SET refs = refs + 1`)
          .run(order, ...args);
        const insert = this.#db.prepare("INSERT OR IGNORE INTO blobs VALUES (?)");
        for (const b of reader.blobs()) insert.run(b.name);
      })();
      const t = this.#db.prepare(`SELECT count(*), total(raw), total(stored) FROM (${sql})`).raw(true).get(...args) as number[];
      const files = reader.fileTotals();
      this.#totals.set(order, { files: files.files, logical: files.bytes, total: bytes(t) });
    } finally {
      this.#db.exec("DETACH DATABASE snap");
    }
  }

  /** Per snapshot added (by `order`), once every snapshot has been added. */
  snapshots(): Map<number, SnapshotTally> {
    const rows = this.#db
      .prepare(
        `SELECT first, count(*), total(raw), total(stored), count(CASE WHEN refs = 1 THEN 1 END), total(CASE WHEN refs = 1 THEN raw END),
                total(CASE WHEN refs = 1 THEN stored END)
         FROM chunks GROUP BY first`,
      )
      .raw(true)
      .all() as number[][];
    const byFirst = new Map(rows.map((r) => [r[0]!, r]));
    const out = new Map<number, SnapshotTally>();
    for (const [order, t] of this.#totals) {
      const r = byFirst.get(order);
      // A chunk only one snapshot references is first referenced by it: the rest is shared.
      const only = r ? bytes(r.slice(4)) : { chunks: 0, raw: 0, stored: 0 };
      out.set(order, {
        files: t.files,
        logical: t.logical,
        total: t.total,
        added: r ? bytes(r.slice(1, 4)) : { chunks: 0, raw: 0, stored: 0 },
        shared: { chunks: t.total.chunks - only.chunks, raw: t.total.raw - only.raw, stored: Math.max(0, t.total.stored - only.stored) },
      });
    }
    return out;
  }

  /** Distinct chunks of every snapshot added. */
  unique(): Bytes {
    return bytes(this.#db.prepare("SELECT count(*), total(raw), total(stored) FROM chunks").raw(true).get() as number[]);
  }

  /** Names of the blobs any snapshot added references. */
  referencedBlobs(): Set<string> {
    return new Set(this.#db.prepare("SELECT name FROM blobs").pluck().all() as string[]);
  }

  async close(): Promise<void> {
    if (this.#db.open) this.#db.close();
    await rm(this.#dir, { recursive: true, force: true });
  }
}

function bytes(r: readonly number[]): Bytes {
  return { chunks: r[0]!, raw: r[1]!, stored: Math.round(r[2]!) };
}
