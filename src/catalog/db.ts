import { mkdirSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import type { ChunkLocation } from "../pack/writer.js";
import { COMPRESSION } from "../pack/zstd.js";

// The source host's local index: which chunks already sit in which stored blob, and which files
// were already cut into which chunks. It only ever holds what was proven uploaded (rows are
// written after the blob's put succeeded), so a crash can lose work but never make a later
// backup reference a blob that does not exist. Losing the whole file costs a full re-read.

export const CATALOG_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS blobs (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  size INTEGER NOT NULL,
  header_length INTEGER NOT NULL,
  stored_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chunks (
  hash BLOB PRIMARY KEY,
  blob_id INTEGER NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,
  offset INTEGER NOT NULL,
  length INTEGER NOT NULL,
  raw_length INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_by_blob ON chunks(blob_id);
CREATE TABLE IF NOT EXISTS files (
  path TEXT PRIMARY KEY,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  ctime_ns INTEGER NOT NULL,
  inode INTEGER NOT NULL,
  dev INTEGER NOT NULL,
  chunks BLOB NOT NULL,
  seen_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

const HASH_SIZE = 32;

/** What identifies a file's content without reading it: if all of this matches, it is unchanged. */
export interface FileStamp {
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  inode: bigint;
  dev: bigint;
}

export type FileLookup = { status: "unchanged"; chunks: Buffer[] } | { status: "changed" } | { status: "new" };

export interface BlobRecord {
  name: string;
  size: number;
  headerLength: number;
}

export class Catalog {
  readonly db: Database.Database;
  private readonly stmts;

  constructor(readonly path: string) {
    if (path !== ":memory:") mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    this.db = new Database(path);
    // WAL: readers (status, health-check) never block the backup; NORMAL is durable at each
    // checkpoint and a lost tail only means re-reading some files.
    this.db.pragma("journal_mode = WAL");
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("foreign_keys = ON");
    this.db.exec(SCHEMA);
    this.stmts = {
      chunk: this.db.prepare(
        "SELECT b.name AS blob, c.offset, c.length, c.raw_length AS rawLength FROM chunks c JOIN blobs b ON b.id = c.blob_id WHERE c.hash = ?",
      ),
      hasChunk: this.db.prepare("SELECT 1 FROM chunks WHERE hash = ?").pluck(),
      insertBlob: this.db.prepare(
        "INSERT INTO blobs(name, size, header_length, stored_at) VALUES (?, ?, ?, ?) ON CONFLICT(name) DO UPDATE SET stored_at = excluded.stored_at RETURNING id",
      ).pluck(),
      insertChunk: this.db.prepare(
        "INSERT OR IGNORE INTO chunks(hash, blob_id, offset, length, raw_length) VALUES (?, ?, ?, ?, ?)",
      ),
      file: this.db.prepare("SELECT size, mtime_ns, ctime_ns, inode, dev, chunks FROM files WHERE path = ?").safeIntegers(),
      upsertFile: this.db.prepare(
        "INSERT INTO files(path, size, mtime_ns, ctime_ns, inode, dev, chunks, seen_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?) " +
          "ON CONFLICT(path) DO UPDATE SET size = excluded.size, mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns, " +
          "inode = excluded.inode, dev = excluded.dev, chunks = excluded.chunks, seen_at = excluded.seen_at",
      ),
      deleteBlob: this.db.prepare("DELETE FROM blobs WHERE name = ?"),
      getState: this.db.prepare("SELECT value FROM state WHERE key = ?").pluck(),
      setState: this.db.prepare("INSERT INTO state(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"),
    };
    const version = this.getState("catalog_version");
    if (version === undefined) this.setState("catalog_version", String(CATALOG_VERSION));
    else if (Number(version) !== CATALOG_VERSION) {
      throw new Error(`${path}: local index version ${version}, this vaultik reads ${CATALOG_VERSION}; move it aside to rebuild`);
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  hasChunk(hash: Uint8Array): boolean {
    return this.stmts.hasChunk.get(hash) !== undefined;
  }

  chunk(hash: Uint8Array): Omit<ChunkLocation, "id"> | undefined {
    const row = this.stmts.chunk.get(hash) as { blob: string; offset: number; length: number; rawLength: number } | undefined;
    return row && { ...row, compression: COMPRESSION };
  }

  /** Records a blob that is now stored, with every chunk in it, in one transaction. */
  recordBlob(blob: BlobRecord, chunks: readonly ChunkLocation[], now = Date.now()): void {
    this.db.transaction(() => {
      const id = this.stmts.insertBlob.get(blob.name, blob.size, blob.headerLength, now) as number;
      for (const c of chunks) this.stmts.insertChunk.run(Buffer.from(c.id, "hex"), id, c.offset, c.length, c.rawLength);
    })();
  }

  /**
   * Whether a file is unchanged since it was last backed up (same size, mtime, ctime, inode and
   * device, and every chunk still known to be stored), changed, or new to this index. A chunk no
   * longer known (a prune notice removed its blob) makes the file "changed": it is read again.
   */
  lookupFile(path: string, stamp: FileStamp): FileLookup {
    const row = this.stmts.file.get(path) as
      | { size: bigint; mtime_ns: bigint; ctime_ns: bigint; inode: bigint; dev: bigint; chunks: Buffer }
      | undefined;
    if (!row) return { status: "new" };
    const same =
      row.size === stamp.size && row.mtime_ns === stamp.mtimeNs && row.ctime_ns === stamp.ctimeNs &&
      row.inode === stamp.inode && row.dev === stamp.dev;
    if (!same) return { status: "changed" };
    const chunks = splitHashes(row.chunks);
    return chunks.every((h) => this.hasChunk(h)) ? { status: "unchanged", chunks } : { status: "changed" };
  }

  /** Many file rows in one transaction (per-row commits would dominate a large first backup). */
  recordFiles(files: readonly { path: string; stamp: FileStamp; chunks: readonly Uint8Array[] }[], now = Date.now()): void {
    if (files.length === 0) return;
    this.db.transaction(() => {
      for (const f of files) {
        const { size, mtimeNs, ctimeNs, inode, dev } = f.stamp;
        this.stmts.upsertFile.run(f.path, size, mtimeNs, ctimeNs, inode, dev, Buffer.concat(f.chunks), now);
      }
    })();
  }

  /**
   * Forgets blobs (and, by cascade, their chunks) that a prune has announced it will delete, so
   * the next backup uploads those chunks again instead of referencing doomed blobs.
   */
  forgetBlobs(names: Iterable<string>): number {
    let n = 0;
    this.db.transaction(() => {
      for (const name of names) n += this.stmts.deleteBlob.run(name).changes;
    })();
    return n;
  }

  /** Every blob name the index believes stored. */
  blobNames(): string[] {
    return this.db.prepare("SELECT name FROM blobs").pluck().all() as string[];
  }

  /** Drops file rows not seen since `before` (files deleted from the source). */
  dropFilesNotSeenSince(before: number): number {
    return this.db.prepare("DELETE FROM files WHERE seen_at < ?").run(before).changes;
  }

  /** Marks rows seen without rewriting them (unchanged files). */
  touchFiles(paths: readonly string[], now = Date.now()): void {
    if (paths.length === 0) return;
    const stmt = this.db.prepare("UPDATE files SET seen_at = ? WHERE path = ?");
    this.db.transaction(() => {
      for (const p of paths) stmt.run(now, p);
    })();
  }

  getState(key: string): string | undefined {
    return this.stmts.getState.get(key) as string | undefined;
  }

  setState(key: string, value: string): void {
    this.stmts.setState.run(key, value);
  }

  counts(): { blobs: number; chunks: number; files: number } {
    const one = (sql: string) => this.db.prepare(sql).pluck().get() as number;
    return { blobs: one("SELECT count(*) FROM blobs"), chunks: one("SELECT count(*) FROM chunks"), files: one("SELECT count(*) FROM files") };
  }
}

export function splitHashes(concatenated: Uint8Array): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < concatenated.length; i += HASH_SIZE) {
    out.push(Buffer.from(concatenated.buffer, concatenated.byteOffset + i, HASH_SIZE));
  }
  return out;
}
