import { chmodSync, closeSync, existsSync, openSync } from "node:fs";
import { dirname } from "node:path";
import Database from "better-sqlite3";
import type { ChunkLocation } from "../model/chunk.js";
import type { BlobName } from "../model/ids.js";
import { COMPRESSION } from "../model/chunk.js";
import { decodePath, encodePath } from "../model/path-bytes.js";
import { belowBounds } from "../util/paths.js";
import { shareView, type PathSource, type SharedView } from "./attach.js";
import { LocalStateError, errorMessage } from "../errors.js";
import { makeDirsSync } from "../util/mkdir.js";
import { packChunks, packXattrs, unpackChunks, unpackXattrs, type ChunkRef, type XattrRecord } from "./codec.js";
import { migrate } from "./migrate.js";
import { openSqlite } from "./sqlite.js";

// The source host's local index: which chunks already sit in which stored blob, every entry the
// last walks saw (with its stat, so a daemon run can trust unchanged subtrees without walking
// them), and which files were already cut into which chunks. It only ever holds what was proven uploaded (rows are
// written after the blob's put succeeded), so a crash can lose work but never make a later
// backup reference a blob that does not exist. Losing the whole file costs a full re-read.
// Every blob row carries the id of the recipient set it is sealed to (see recipients.ts and
// useRecipients): only blobs of the current run's set are ever deduplicated against.
// Paths are the bytes the kernel gave (BLOB, model/path-bytes): two names that differ only in
// bytes that are not UTF-8 are two rows.

export const CATALOG_VERSION = 6;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS blobs (
  id INTEGER PRIMARY KEY,
  name TEXT NOT NULL UNIQUE,
  size INTEGER NOT NULL,
  header_length INTEGER NOT NULL,
  stored_at INTEGER NOT NULL,
  -- recipientSetId() of the keys the blob is sealed to; '' = unknown (recorded before version 5)
  recipients TEXT NOT NULL DEFAULT ''
);
CREATE TABLE IF NOT EXISTS chunks (
  hash BLOB PRIMARY KEY,
  blob_id INTEGER NOT NULL REFERENCES blobs(id) ON DELETE CASCADE,
  offset INTEGER NOT NULL,
  length INTEGER NOT NULL,
  raw_offset INTEGER NOT NULL,
  raw_length INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS chunks_by_blob ON chunks(blob_id);
CREATE TABLE IF NOT EXISTS entries (
  path BLOB PRIMARY KEY,
  type TEXT NOT NULL,
  mode INTEGER NOT NULL,
  uid INTEGER NOT NULL,
  gid INTEGER NOT NULL,
  size INTEGER NOT NULL,
  mtime_ns INTEGER NOT NULL,
  ctime_ns INTEGER NOT NULL,
  inode INTEGER NOT NULL,
  dev INTEGER NOT NULL,
  nlink INTEGER NOT NULL DEFAULT 1,
  rdev INTEGER,
  link_target BLOB,
  -- codec.ts packChunks: (hash, file offset, length) per chunk; NULL = read the file again
  chunks BLOB,
  -- codec.ts packXattrs as of ctime_ns; NULL = not read yet (rows from before version 6)
  xattrs BLOB,
  verified_epoch INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

/** The inode of a row imported from a catalog seed (no stat returns it); see lookupFile. */
export const SEEDED_INODE = -1n;

/** What identifies a file's content without reading it: if all of this matches, it is unchanged. */
export interface FileStamp {
  size: bigint;
  mtimeNs: bigint;
  ctimeNs: bigint;
  inode: bigint;
  dev: bigint;
}

export type CatalogEntryType = "file" | "dir" | "symlink" | "fifo" | "chardev" | "blockdev";

/** One walked entry as the catalog keeps it. Paths are internal strings (model/path-bytes). */
export interface CatalogEntry {
  path: string;
  type: CatalogEntryType;
  mode: number;
  uid: number;
  gid: number;
  stamp: FileStamp;
  /** Names of the inode (st_nlink; absent = 1): a file with more is part of a hard-link set. */
  nlink?: number;
  /** st_rdev of a device node. */
  rdev?: number;
  linkTarget?: string;
  /** Extended attributes as of stamp.ctimeNs; undefined = not read. */
  xattrs?: readonly XattrRecord[];
}

const ENTRY_COLUMNS = "path, type, mode, uid, gid, size, mtime_ns, ctime_ns, inode, dev, nlink, rdev, link_target";

function toCatalogEntry(r: Record<string, bigint | string | Buffer | null>): CatalogEntry {
  return {
    path: decodePath(r["path"] as Buffer),
    type: r["type"] as CatalogEntry["type"],
    mode: Number(r["mode"]),
    uid: Number(r["uid"]),
    gid: Number(r["gid"]),
    stamp: {
      size: r["size"] as bigint,
      mtimeNs: r["mtime_ns"] as bigint,
      ctimeNs: r["ctime_ns"] as bigint,
      inode: r["inode"] as bigint,
      dev: r["dev"] as bigint,
    },
    nlink: Number(r["nlink"]),
    rdev: r["rdev"] === null ? undefined : Number(r["rdev"]),
    linkTarget: r["link_target"] === null ? undefined : decodePath(r["link_target"] as Buffer),
  };
}

/**
 * "unchanged": the content is as recorded (size, mtime, inode and device match), `chunks` are
 * its chunks. `xattrs` are the recorded attributes when the ctime matches too; absent, the
 * metadata changed (chmod, chown, setfattr, a new link all move ctime) and must be read again.
 */
export type FileLookup =
  | { status: "unchanged"; chunks: ChunkRef[]; xattrs?: XattrRecord[] }
  | { status: "changed" }
  | { status: "new" };

export interface BlobRecord {
  name: string;
  size: number;
  headerLength: number;
}

export class Catalog {
  readonly db: Database.Database;
  private readonly stmts: ReturnType<Catalog["init"]>;

  /**
   * Opens (or creates) the index at `path`. With `verify`, a damaged file (see damage.ts) throws
   * before anything is written to it, so it can be moved aside as it was found.
   */
  constructor(
    readonly path: string,
    options: { verify?: (db: Database.Database) => void } = {},
  ) {
    if (path !== ":memory:") createPrivate(path);
    this.db = openSqlite(path);
    try {
      options.verify?.(this.db);
      this.stmts = this.init();
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  private init() {
    const path = this.path;
    // WAL: readers (status, health-check) never block the backup; NORMAL is durable at each
    // checkpoint and a lost tail only means re-reading some files.
    this.db.pragma("journal_mode = WAL");
    // SQLite gives -wal and -shm the main file's mode; an index from before this rule may have
    // left world-readable ones behind.
    if (path !== ":memory:") for (const p of [`${path}-wal`, `${path}-shm`]) if (existsSync(p)) chmodSync(p, 0o600);
    this.db.pragma("synchronous = NORMAL");
    this.db.pragma("foreign_keys = ON");
    migrate(this.db, CATALOG_VERSION);
    this.db.exec(SCHEMA);
    // Before any statement is prepared: a newer index may lack or rename columns.
    const version = this.db.prepare("SELECT value FROM state WHERE key = 'catalog_version'").pluck().get() as string | undefined;
    if (version !== undefined && Number(version) !== CATALOG_VERSION) {
      throw new LocalStateError(path, `local index version ${version}, this vaultik reads ${CATALOG_VERSION}; move it aside to rebuild`);
    }
    const stmts = {
      chunk: this.db.prepare(
        "SELECT b.name AS blob, c.offset, c.length, c.raw_offset AS rawOffset, c.raw_length AS rawLength " +
          "FROM chunks c JOIN blobs b ON b.id = c.blob_id WHERE c.hash = ?",
      ),
      hasChunk: this.db.prepare("SELECT 1 FROM chunks WHERE hash = ?").pluck(),
      insertBlob: this.db.prepare(
        "INSERT INTO blobs(name, size, header_length, stored_at, recipients) VALUES (?, ?, ?, ?, ?) " +
          "ON CONFLICT(name) DO UPDATE SET stored_at = excluded.stored_at RETURNING id",
      ).pluck(),
      insertChunk: this.db.prepare(
        "INSERT OR IGNORE INTO chunks(hash, blob_id, offset, length, raw_offset, raw_length) VALUES (?, ?, ?, ?, ?, ?)",
      ),
      // Raw rows: asked once per walked file, and an array costs less than an object.
      // xattrs: 0 when none (most files). A BLOB result, even empty, costs a Buffer allocation
      // of several µs: more than the rest of an unchanged file's lookup.
      file: this.db
        .prepare(
          "SELECT size, mtime_ns, ctime_ns, inode, dev, chunks, verified_epoch, CASE WHEN length(xattrs) = 0 THEN 0 ELSE xattrs END " +
            "FROM entries WHERE path = ? AND type = 'file'",
        )
        .safeIntegers()
        .raw(),
      xattrs: this.db.prepare("SELECT CASE WHEN length(xattrs) = 0 THEN 0 ELSE xattrs END FROM entries WHERE path = ? AND type = ? AND ctime_ns = ?").pluck(),
      // A row whose content stamp changed loses its chunk list: the content must be read again.
      // ctime alone does not count: it moves with every metadata change (FileLookup).
      upsertEntry: this.db.prepare(
        "INSERT INTO entries(path, type, mode, uid, gid, size, mtime_ns, ctime_ns, inode, dev, nlink, rdev, link_target, chunks, xattrs) " +
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?) ON CONFLICT(path) DO UPDATE SET " +
          "chunks = CASE WHEN type = excluded.type AND size = excluded.size AND mtime_ns = excluded.mtime_ns AND " +
          "inode = excluded.inode AND dev = excluded.dev THEN chunks ELSE NULL END, " +
          "type = excluded.type, mode = excluded.mode, uid = excluded.uid, gid = excluded.gid, size = excluded.size, " +
          "mtime_ns = excluded.mtime_ns, ctime_ns = excluded.ctime_ns, inode = excluded.inode, dev = excluded.dev, " +
          "nlink = excluded.nlink, rdev = excluded.rdev, link_target = excluded.link_target, xattrs = excluded.xattrs",
      ),
      setChunks: this.db.prepare(
        "UPDATE entries SET chunks = ?, verified_epoch = ? WHERE path = ? AND size = ? AND mtime_ns = ? AND ctime_ns = ? AND inode = ? AND dev = ?",
      ),
      adoptStamp: this.db.prepare("UPDATE entries SET ctime_ns = ?, inode = ?, dev = ? WHERE path = ?"),
      setVerified: this.db.prepare("UPDATE entries SET verified_epoch = ? WHERE path = ?"),
      forgetChunks: this.db.prepare("UPDATE entries SET chunks = NULL WHERE path = ?"),
      children: this.db.prepare("SELECT path FROM entries WHERE path > ? AND path < ? AND instr(substr(path, ?), x'2f') = 0").pluck(),
      dropSubtree: this.db.prepare("DELETE FROM entries WHERE path = ? OR (path > ? AND path < ?)"),
      deleteBlob: this.db.prepare("DELETE FROM blobs WHERE name = ?"),
      getState: this.db.prepare("SELECT value FROM state WHERE key = ?").pluck(),
      setState: this.db.prepare("INSERT INTO state(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value"),
    };
    if (version === undefined) stmts.setState.run("catalog_version", String(CATALOG_VERSION));
    return stmts;
  }

  private recipients: string | undefined;

  /**
   * Declares the recipient set (recipientSetId) this run seals to, before anything is looked
   * up or recorded. Blobs sealed to any other set are forgotten, exactly like blobs a prune
   * announced: their chunks count as not stored and the files that use them as changed, so the
   * run uploads them again sealed to this set. Forgetting (instead of filtering every lookup)
   * keeps the per-chunk queries, the chunk workers' own reads and lookupFile's epoch shortcut
   * unchanged and as fast as before.
   */
  useRecipients(id: string): number {
    this.recipients = id;
    const stale = this.db.prepare("SELECT name FROM blobs WHERE recipients != ?").pluck().all(id) as string[];
    return stale.length > 0 ? this.forgetBlobs(stale) : 0;
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  hasChunk(hash: Uint8Array): boolean {
    return this.stmts.hasChunk.get(hash) !== undefined;
  }

  chunk(hash: Uint8Array): Omit<ChunkLocation, "id"> | undefined {
    const row = this.stmts.chunk.get(hash) as { blob: string; offset: number; length: number; rawOffset: number; rawLength: number } | undefined;
    return row && { ...row, blob: row.blob as BlobName, compression: COMPRESSION };
  }

  /** Records a blob that is now stored, with every chunk in it, in one transaction. */
  recordBlob(blob: BlobRecord, chunks: readonly ChunkLocation[], now = Date.now()): void {
    const recipients = this.recipients;
    if (recipients === undefined) throw new Error("Catalog.recordBlob before useRecipients: which keys is this blob sealed to?");
    this.db.transaction(() => {
      const id = this.stmts.insertBlob.get(blob.name, blob.size, blob.headerLength, now, recipients) as number;
      for (const c of chunks) this.stmts.insertChunk.run(Buffer.from(c.id, "hex"), id, c.offset, c.length, c.rawOffset, c.rawLength);
    })();
  }

  /**
   * Whether a file is unchanged since it was last backed up (same size, mtime, ctime, inode and
   * device, and every chunk still known to be stored), changed, or new to this index. A chunk no
   * longer known (a prune notice removed its blob) makes the file "changed": it is read again.
   */
  lookupFile(path: string, stamp: FileStamp): FileLookup {
    const key = encodePath(path);
    const row = this.stmts.file.get(key) as [bigint, bigint, bigint, bigint, bigint, Buffer | null, bigint, Buffer | bigint | null] | undefined;
    if (!row) return { status: "new" };
    const [size, mtimeNs, ctimeNs, inode, dev, chunkList, verifiedEpoch, xattrs] = row;
    if (chunkList === null) return { status: "changed" };
    const same = size === stamp.size && mtimeNs === stamp.mtimeNs && inode === stamp.inode && dev === stamp.dev;
    let metaSame = ctimeNs === stamp.ctimeNs;
    if (!same) {
      // A row from a catalog seed knows only size and mtime (seed.ts): trusted on those once,
      // as restic's --ignore-inode would, then it holds the full stamp like any other row.
      if (inode !== SEEDED_INODE || size !== stamp.size || mtimeNs !== stamp.mtimeNs) return { status: "changed" };
      this.stmts.adoptStamp.run(stamp.ctimeNs, stamp.inode, stamp.dev, key);
      metaSame = false;
    }
    const chunks = unpackChunks(chunkList);
    const known = metaSame && xattrs !== null ? { xattrs: typeof xattrs === "bigint" ? [] : unpackXattrs(xattrs) } : {};
    // Chunks disappear from the index only when blobs are forgotten, which bumps the epoch: a
    // row verified in this epoch needs no lookup per chunk.
    const epoch = this.epoch();
    if (Number(verifiedEpoch) === epoch) return { status: "unchanged", chunks, ...known };
    if (!chunks.every((c) => this.hasChunk(c.hash))) return { status: "changed" };
    this.stmts.setVerified.run(epoch, key);
    return { status: "unchanged", chunks, ...known };
  }

  /** The recorded extended attributes of an entry whose type and ctime are still `type` and `ctimeNs`. */
  knownXattrs(path: string, type: CatalogEntryType, ctimeNs: bigint): XattrRecord[] | undefined {
    const packed = this.stmts.xattrs.get(encodePath(path), type, ctimeNs) as Buffer | number | null | undefined;
    if (packed === null || packed === undefined) return undefined;
    return typeof packed === "number" ? [] : unpackXattrs(packed);
  }

  private epochCache: number | undefined;

  /** Bumped whenever blobs are forgotten; see lookupFile. */
  epoch(): number {
    return (this.epochCache ??= Number(this.getState("chunk_epoch") ?? 0));
  }

  /** Records what a walk saw, in one transaction (per-row commits would dominate a large run). */
  recordEntries(entries: readonly CatalogEntry[]): void {
    if (entries.length === 0) return;
    this.db.transaction(() => {
      for (const e of entries) {
        this.stmts.upsertEntry.run(
          encodePath(e.path), e.type, e.mode, e.uid, e.gid, e.stamp.size, e.stamp.mtimeNs, e.stamp.ctimeNs, e.stamp.inode, e.stamp.dev,
          e.nlink ?? 1, e.rdev ?? null, e.linkTarget === undefined ? null : encodePath(e.linkTarget),
          e.xattrs === undefined ? null : packXattrs(e.xattrs),
        );
      }
    })();
  }

  /**
   * Stores the chunk lists of files whose chunks are all stored now. A file whose row no longer
   * has the same stamp (it changed meanwhile) keeps no chunk list.
   */
  recordChunks(files: readonly { path: string; stamp: FileStamp; chunks: Buffer | readonly ChunkRef[] }[]): void {
    if (files.length === 0) return;
    this.db.transaction(() => {
      for (const f of files) {
        const { size, mtimeNs, ctimeNs, inode, dev } = f.stamp;
        this.stmts.setChunks.run(Buffer.isBuffer(f.chunks) ? f.chunks : packChunks(f.chunks as readonly ChunkRef[]), this.epoch(), encodePath(f.path), size, mtimeNs, ctimeNs, inode, dev);
      }
    })();
  }

  /** Makes the next run read these files again (they changed while read, or failed). */
  forgetChunks(paths: readonly string[]): void {
    this.db.transaction(() => {
      for (const p of paths) this.stmts.forgetChunks.run(encodePath(p));
    })();
  }

  /**
   * Entries recorded strictly below directory `dir` (absolute), in path order, a page at a time
   * (no open cursor: the backup writes to this database while it reads).
   */
  *subtree(dir: string, pageSize = 1000): Generator<CatalogEntry> {
    const [prefix, end] = belowBounds(dir).map(encodePath) as [Buffer, Buffer];
    const page = this.db
      .prepare(`SELECT ${ENTRY_COLUMNS} FROM entries WHERE path > ? AND path < ? ORDER BY path LIMIT ?`)
      .safeIntegers();
    let after = prefix;
    for (;;) {
      const rows = page.all(after, end, pageSize) as Record<string, bigint | string | Buffer | null>[];
      for (const r of rows) yield toCatalogEntry(r);
      if (rows.length < pageSize) return;
      after = rows[rows.length - 1]!["path"] as Buffer;
    }
  }

  /** Absolute paths of the recorded entries directly inside directory `dir`. */
  children(dir: string): string[] {
    // Called for every directory an incremental walk lists: a prepared statement, not a new one.
    const [low, high] = belowBounds(dir).map(encodePath) as [Buffer, Buffer];
    return (this.stmts.children.all(low, high, low.length + 1) as Buffer[]).map(decodePath);
  }

  /** Forgets an entry and everything recorded below it (it is gone from the source). */
  dropSubtree(path: string): void {
    this.stmts.dropSubtree.run(encodePath(path), ...belowBounds(path).map(encodePath));
  }

  /** The recorded entry at `path`, if any. */
  entry(path: string): CatalogEntry | undefined {
    const row = this.db
      .prepare(`SELECT ${ENTRY_COLUMNS} FROM entries WHERE path = ?`)
      .safeIntegers()
      .get(encodePath(path)) as Record<string, bigint | string | Buffer | null> | undefined;
    return row && toCatalogEntry(row);
  }

  /**
   * Forgets blobs (and, by cascade, their chunks) that a prune has announced it will delete, so
   * the next backup uploads those chunks again instead of referencing doomed blobs.
   */
  forgetBlobs(names: Iterable<string>): number {
    let n = 0;
    this.db.transaction(() => {
      for (const name of names) n += this.stmts.deleteBlob.run(name).changes;
      if (n > 0) {
        this.epochCache = this.epoch() + 1;
        this.setState("chunk_epoch", String(this.epochCache));
      }
    })();
    return n;
  }

  /** Every blob name the index believes stored. */
  blobNames(): string[] {
    return this.db.prepare("SELECT name FROM blobs").pluck().all() as string[];
  }

  /** Every blob the index believes stored, with the size it was stored with. */
  blobSizes(): Map<string, number> {
    const rows = this.db.prepare("SELECT name, size FROM blobs").raw().all() as [string, number][];
    return new Map(rows);
  }

  /**
   * Drops rows of entries a full walk no longer saw (deleted from the source): everything below
   * `roots` (the walk's source dirs) not among `walked`'s paths, which lists every entry of that
   * walk (the snapshot it built). Rows outside the roots are another app's (apps: share one
   * index) and stay, or that app's next run would read every file again.
   */
  dropEntriesMissingFrom(walked: PathSource, roots: readonly string[]): number {
    if (roots.length === 0) return 0;
    const paths = walked.sharePaths(this.db);
    try {
      const under = roots.map(() => "(path = ? OR (path > ? AND path < ?))").join(" OR ");
      const args = roots.flatMap((root) => [root, ...belowBounds(root)].map(encodePath));
      // Catalog paths are absolute, snapshot paths are not.
      return this.db
        .prepare(`DELETE FROM entries WHERE (${under}) AND NOT EXISTS (SELECT 1 FROM ${paths.name} f WHERE f.path = CAST(substr(entries.path, 2) AS BLOB))`)
        .run(...args).changes;
    } finally {
      paths.close();
    }
  }

  /**
   * Makes the stored chunks joinable from another connection (the snapshot builder's), as a view
   * with columns hash, blob, blob_size, header_length, offset, length, raw_offset, raw_length.
   */
  shareChunkLocations(conn: Database.Database): SharedView {
    return shareView(
      conn, this.path, "cat", "catalog_chunks",
      "SELECT c.hash, b.name AS blob, b.size AS blob_size, b.header_length, c.offset, c.length, c.raw_offset, c.raw_length " +
        "FROM cat.chunks c JOIN cat.blobs b ON b.id = c.blob_id",
    );
  }

  getState(key: string): string | undefined {
    return this.stmts.getState.get(key) as string | undefined;
  }

  setState(key: string, value: string): void {
    this.stmts.setState.run(key, value);
  }

  counts(): { blobs: number; chunks: number; files: number } {
    const one = (sql: string) => this.db.prepare(sql).pluck().get() as number;
    return {
      blobs: one("SELECT count(*) FROM blobs"),
      chunks: one("SELECT count(*) FROM chunks"),
      files: one("SELECT count(*) FROM entries WHERE type = 'file'"),
    };
  }
}

/**
 * Creates the index file 0600 (in a 0700 folder) before SQLite does, which would make it 0644
 * under the usual umask: it lists every backed-up path. An existing one is tightened.
 */
function createPrivate(path: string): void {
  try {
    makeDirsSync(dirname(path), 0o700);
    closeSync(openSync(path, "a", 0o600));
    chmodSync(path, 0o600);
  } catch (err) {
    throw new LocalStateError(path, `cannot create vaultik's local index here (${errorMessage(err)}); set index_path to a writable place`, { cause: err });
  }
}
