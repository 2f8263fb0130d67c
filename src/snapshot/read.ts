import { createHash } from "node:crypto";
import Database from "better-sqlite3";
import { IntegrityError, errorMessage } from "../errors.js";
import type { ChunkLocation } from "../model/chunk.js";
import type { BlobName, ChunkId } from "../model/ids.js";
import { COMPRESSION } from "../model/chunk.js";
import { decodePath, encodePath } from "../model/path-bytes.js";
import { ENTRY_TYPES, OLDEST_SNAPSHOT_FORMAT, SNAPSHOT_FORMAT, type EntryType, type SnapshotEntry, type SnapshotMeta, type SnapshotStats, type Xattr } from "./schema.js";
import { belowBounds } from "../util/paths.js";
import { openSqlite, attachSqlite } from "../catalog/sqlite.js";

// Read access to a decrypted snapshot database on the recovery machine.

export interface EntryRow extends Omit<SnapshotEntry, "linkTarget" | "status" | "xattrs" | "userName" | "groupName" | "rdev"> {
  id: number;
  linkTarget: string | null;
  status: string | null;
  userName: string | null;
  groupName: string | null;
  rdev: number | null;
  /**
   * A file in a hard-link set: the id of the set's first entry (which holds the content), the
   * same for every member. Null for other entries (and always in format 1).
   */
  linkId: number | null;
  /** Chunks of a file (of its link set's content), when asked for. */
  chunks?: number;
}

/**
 * One zstd frame of a restore plan: the distinct chunks wanted from it (in raw-offset order) and
 * where each goes. Target k puts chunk `ids[chunkOf[k]]` into file entry `fileOf[k]` at byte
 * `fileOffsetOf[k]`; targets are in chunk order. Typed arrays: a frame can have thousands.
 */
export interface FramePlan {
  blob: BlobName;
  /** Ciphertext size of the blob. */
  blobSize: number;
  /** The frame in the blob's plaintext. */
  offset: number;
  length: number;
  /** The distinct chunks: ids, and [rawOffset, rawLength] pairs in `raw`. */
  ids: ChunkId[];
  raw: Float64Array;
  chunkOf: Uint32Array;
  fileOf: Float64Array;
  fileOffsetOf: Float64Array;
  /** Set on a part that lists only the files (fileOf) referencing chunks without a blob location. */
  unplaced?: true;
}

/** What a restore needs of a file entry a plan names. */
export interface FileInfo {
  path: string;
  /** Chunks of the file (of its link set) in all. */
  chunks: number;
  meta: { size: number; mode: number; uid: number; gid: number; mtimeUs: number };
}

/** A chunk of a file in file order, with where it starts in the file (gaps are holes). */
export type FileChunk = ChunkLocation & { fileOffset: number };

/** A file entry that restore makes as a hard link to `leader`, restored with content. */
export interface HardLink {
  id: number;
  path: string;
  leaderId: number;
  leaderPath: string;
}

export class SnapshotReader {
  // Private: the snapshot schema's SQL stays in snapshot/, callers ask through methods.
  readonly #db: Database.Database;
  /** A second connection for per-file lookups: better-sqlite3 runs nothing else on a connection while one of its iterators is open. */
  #lookupDb: Database.Database | undefined;
  #xattrsOf: Database.Statement | undefined;
  #fileInfo: Database.Statement | undefined;
  readonly meta: SnapshotMeta;
  /** Format 2 or later: byte paths, chunks by offset, hard links, xattrs (FORMAT.md §4). */
  readonly #v2: boolean;

  constructor(
    readonly path: string,
    readonly object: string,
  ) {
    try {
      this.#db = openSqlite(path, { readonly: true, fileMustExist: true });
      this.meta = readMeta(this.#db, object);
    } catch (err) {
      if (err instanceof IntegrityError) throw err;
      throw new IntegrityError(object, `not a readable snapshot database: ${errorMessage(err)}`, { cause: err });
    }
    refuseUnknown(this.meta, object);
    this.#v2 = this.meta.format >= 2;
  }

  /** A path as the database compares it: bytes from format 2 on, text before. */
  #key(path: string): string | Buffer {
    return this.#v2 ? encodePath(path) : path;
  }

  /** The prefix and the bounds of what lies below it, as SQL arguments (see belowBounds). */
  #within(prefix: string): (string | Buffer)[] {
    return [prefix, ...belowBounds(prefix)].map((p) => this.#key(p));
  }

  #toEntry(row: Record<string, unknown>): EntryRow {
    const path = this.#path(row["path"]);
    // The schema's CHECK says so, but a crafted database need not have that schema.
    if (!ENTRY_TYPES.has(row["type"] as string)) {
      throw new IntegrityError(this.object, `entry ${JSON.stringify(path)} has unknown type ${JSON.stringify(row["type"])}`);
    }
    const num = (v: unknown) => (v === null || v === undefined ? null : Number(v));
    return {
      id: Number(row["id"]),
      path,
      type: row["type"] as EntryType,
      mode: Number(row["mode"]),
      uid: Number(row["uid"]),
      gid: Number(row["gid"]),
      size: Number(row["size"]),
      mtimeNs: BigInt(row["mtimeNs"] as bigint),
      linkTarget: row["linkTarget"] === null || row["linkTarget"] === undefined ? null : this.#path(row["linkTarget"]),
      status: (row["status"] as string | null) ?? null,
      userName: (row["userName"] as string | null | undefined) ?? null,
      groupName: (row["groupName"] as string | null | undefined) ?? null,
      rdev: num(row["rdev"]),
      linkId: num(row["linkId"]),
      ...(row["chunks"] === undefined ? {} : { chunks: Number(row["chunks"]) }),
    };
  }

  /** A path column's value as an internal path string. */
  #path(value: unknown): string {
    return this.#v2 && value instanceof Uint8Array ? decodePath(value) : String(value);
  }

  close(): void {
    if (this.#lookupDb?.open) this.#lookupDb.close();
    if (this.#db.open) this.#db.close();
  }

  get stats(): SnapshotStats | undefined {
    return this.meta.stats;
  }

  /**
   * Entries in path order, all of them or those at or below `prefix` (a snapshot path); with
   * `withChunks`, each with its number of chunks.
   */
  *entries(prefix?: string, withChunks = false): Generator<EntryRow> {
    const cols =
      this.#columns() +
      (withChunks
        ? `, (SELECT count(*) FROM file_chunks fc WHERE fc.file_id = ${this.#v2 ? "coalesce(files.link_id, files.id)" : "files.id"}) AS chunks`
        : "");
    const stmt =
      prefix === undefined || prefix === ""
        ? this.#db.prepare(`SELECT ${cols} FROM files ORDER BY path`)
        : this.#db.prepare(`SELECT ${cols} FROM files WHERE path = ? OR (path > ? AND path < ?) ORDER BY path`);
    const args = prefix === undefined || prefix === "" ? [] : this.#within(prefix);
    for (const row of stmt.safeIntegers(true).iterate(...args) as Iterable<Record<string, unknown>>) {
      yield this.#toEntry(row);
    }
  }

  entry(path: string): EntryRow | undefined {
    for (const e of this.entries(path)) if (e.path === path) return e;
    return undefined;
  }

  errors(): { path: string; message: string }[] {
    const rows = this.#db.prepare("SELECT path, message FROM errors ORDER BY path").all() as { path: unknown; message: string }[];
    return rows.map((r) => ({ path: this.#path(r.path), message: r.message }));
  }

  /** Whether any file has extended attributes: a restore of a snapshot without any asks no file (~20 µs a query). */
  anyXattrs(): boolean {
    if (!this.#v2) return false;
    // On the second connection: restore asks while iterating entries() on the first.
    this.#lookupDb ??= openSqlite(this.path, { readonly: true, fileMustExist: true });
    return this.#lookupDb.prepare("SELECT EXISTS (SELECT 1 FROM xattrs)").pluck().get() === 1;
  }

  /** A file's extended attributes (POSIX ACLs among them), by name; none in format 1. */
  xattrs(fileId: number): Xattr[] {
    if (!this.#v2) return [];
    this.#lookupDb ??= openSqlite(this.path, { readonly: true, fileMustExist: true });
    // Prepared once: restore asks for every entry, and a prepare costs ~20 µs, the query ~1 µs.
    this.#xattrsOf ??= this.#lookupDb.prepare("SELECT name, value FROM xattrs WHERE file_id = ? ORDER BY name");
    const rows = this.#xattrsOf.all(fileId) as { name: Uint8Array; value: Uint8Array }[];
    return rows.map((r) => ({ name: decodePath(r.name), value: r.value }));
  }

  /**
   * Hard links to make: every file at or below `prefix` in a link set but the set's first
   * member there (its leader, restored with content), with that leader. A set whose stored
   * first entry lies outside `prefix` gets its content from it all the same (framePlans()).
   */
  *hardLinks(prefix?: string): Generator<HardLink> {
    if (!this.#v2) return;
    const whole = prefix === undefined || prefix === "";
    const filter = whole ? "" : "AND (f.path = ? OR (f.path > ? AND f.path < ?))";
    const rows = this.#db
      .prepare(
        `WITH sel AS (SELECT f.id, f.path, f.link_id AS g FROM files f WHERE f.type = 'file' AND f.link_id IS NOT NULL ${filter}),
              lead AS (SELECT g, min(id) AS id FROM sel GROUP BY g)
         SELECT s.id, s.path, l.id AS leaderId, lf.path AS leaderPath FROM sel s JOIN lead l ON l.g = s.g JOIN files lf ON lf.id = l.id
         WHERE s.id <> l.id ORDER BY s.path`,
      )
      .iterate(...(whole ? [] : this.#within(prefix))) as Iterable<{ id: number; path: unknown; leaderId: number; leaderPath: unknown }>;
    for (const r of rows) yield { id: r.id, path: this.#path(r.path), leaderId: r.leaderId, leaderPath: this.#path(r.leaderPath) };
  }

  /** Every blob the snapshot references, with its size. */
  blobs(): { name: string; size: number }[] {
    return this.#db.prepare("SELECT name, size FROM blobs ORDER BY name").all() as { name: string; size: number }[];
  }

  /**
   * Every chunk placement for the files at or below `prefix`, a zstd frame at a time, grouped by
   * blob and in offset order within a blob, so a restore reads each blob once, front to back:
   * each yield is one frame, its distinct chunks, and every place they go. SQLite hands
   * each frame over as one row of concatenated lists, not a row per chunk: a row costs a few µs
   * in JavaScript, which for a file of 100k small chunks was most of its restore. A frame used
   * by many files or many times by one file comes in several parts (at most 8 files and 8 KiB
   * of each file's offsets per part), so no part grows with what a crafted snapshot repeats.
   */
  *framePlans(prefix?: string): Generator<FramePlan> {
    const whole = prefix === undefined || prefix === "";
    const within = whole ? "" : "AND (f.path = ? OR (f.path > ? AND f.path < ?))";
    const args = whole ? [] : this.#within(prefix);
    const unknown = this.#db.prepare("SELECT hex(hash) AS id, compression FROM chunks WHERE compression <> ? LIMIT 1").get(COMPRESSION) as
      | { id: string; compression: unknown }
      | undefined;
    if (unknown) throw new IntegrityError(this.object, `chunk ${unknown.id} uses unknown compression ${String(unknown.compression)}`);
    // Each placement: file id (the restore leader of a link set), its offset in the file, and the chunk.
    const placed = this.#v2
      ? `WITH lead AS (
           SELECT f.id, f.id AS g FROM files f WHERE f.type = 'file' AND f.link_id IS NULL ${within}
           UNION ALL
           SELECT min(f.id), f.link_id FROM files f WHERE f.type = 'file' AND f.link_id IS NOT NULL ${within} GROUP BY f.link_id)
         SELECT l.id AS fid, fc.offset AS foff, fc.chunk AS h FROM lead l JOIN file_chunks fc ON fc.file_id = l.g`
      : // Format 1 keeps no offsets: a running sum over each file's rows in seq order.
        `SELECT fc.file_id AS fid, SUM(c.raw_length) OVER (PARTITION BY fc.file_id ORDER BY fc.seq) - c.raw_length AS foff, fc.chunk AS h
         FROM files f JOIN file_chunks fc ON fc.file_id = f.id JOIN chunks c ON c.hash = fc.chunk WHERE f.type = 'file' ${within}`;
    // group_concat lists of one group are built over the same rows in the same order, so they
    // line up; the order within a frame is put right in JavaScript.
    const stmt = this.#db.prepare(`
      WITH p AS (${placed})
      SELECT b.id, c.offset, max(c.length), group_concat(hex(p.h), ''), group_concat(coalesce(c.raw_offset, 0)),
             group_concat(coalesce(c.raw_length, 0)), group_concat(p.fid), group_concat(p.foff)
      FROM p LEFT JOIN chunks c ON c.hash = p.h LEFT JOIN blobs b ON b.id = c.blob_id
      GROUP BY b.id, c.offset, p.fid >> 3, p.foff >> 13
      ORDER BY b.id, c.offset`);
    this.#lookupDb ??= openSqlite(this.path, { readonly: true, fileMustExist: true });
    const blobRow = this.#lookupDb.prepare("SELECT name, size FROM blobs WHERE id = ?").raw(true);
    let blob: { id: number; name: BlobName; size: number } | undefined;
    const nums = (v: unknown) => String(v).split(",").map(Number);
    for (const r of stmt.raw(true).iterate(...(this.#v2 ? [...args, ...args] : args)) as Iterable<unknown[]>) {
      const blobId = r[0] as number | null;
      if (blobId === null) {
        // References to chunks the snapshot gives no blob for (crafted or damaged): they sort
        // first, so their files fail before anything of them is written.
        yield { blob: "" as BlobName, blobSize: 0, offset: -1, length: 0, ids: [], raw: new Float64Array(0), chunkOf: new Uint32Array(0), fileOf: Float64Array.from(nums(r[6])), fileOffsetOf: new Float64Array(0), unplaced: true };
        continue;
      }
      if (blob?.id !== blobId) {
        const b = blobRow.get(blobId) as unknown[];
        blob = { id: blobId, name: b[0] as BlobName, size: b[1] as number };
      }
      const hex = (r[3] as string).toLowerCase();
      const [rawOffsets, rawLengths, fileIds, fileOffsets] = [nums(r[4]), nums(r[5]), nums(r[6]), nums(r[7])];
      const n = fileIds.length;
      const ids = Array.from({ length: n }, (_, i) => hex.slice(i * 64, i * 64 + 64) as ChunkId);
      // Targets by chunk (raw offset, then id), then file and offset: a chunk's targets together.
      // SQLite mostly hands them over in that order already; sorting is the exception.
      const before = (a: number, b: number) =>
        rawOffsets[a]! - rawOffsets[b]! || (ids[a]! < ids[b]! ? -1 : ids[a]! > ids[b]! ? 1 : 0) || fileIds[a]! - fileIds[b]! || fileOffsets[a]! - fileOffsets[b]!;
      const order = Array.from({ length: n }, (_, i) => i);
      if (order.some((i) => i > 0 && before(i - 1, i) > 0)) order.sort(before);
      const distinct: ChunkId[] = [];
      const raw: number[] = [];
      const chunkOf = new Uint32Array(n);
      const fileOf = new Float64Array(n);
      const fileOffsetOf = new Float64Array(n);
      for (let k = 0; k < n; k++) {
        const i = order[k]!;
        const last = distinct.length - 1;
        if (last < 0 || distinct[last] !== ids[i] || raw[2 * last] !== rawOffsets[i]) {
          distinct.push(ids[i]!);
          raw.push(rawOffsets[i]!, rawLengths[i]!);
        }
        chunkOf[k] = distinct.length - 1;
        fileOf[k] = fileIds[i]!;
        fileOffsetOf[k] = fileOffsets[i]!;
      }
      yield { blob: blob.name, blobSize: blob.size, offset: r[1] as number, length: r[2] as number, ids: distinct, raw: Float64Array.from(raw), chunkOf, fileOf, fileOffsetOf };
    }
  }

  /**
   * A file's path and metadata, and how many chunks it has (its link set's): what a restore
   * needs of a file that framePlans() names. Looked up per file, not carried per chunk.
   */
  fileInfo(id: number): FileInfo {
    this.#lookupDb ??= openSqlite(this.path, { readonly: true, fileMustExist: true });
    this.#fileInfo ??= this.#lookupDb
      .prepare(
        `SELECT path, size, mode, uid, gid, mtime_ns / 1000,
                (SELECT count(*) FROM file_chunks fc WHERE fc.file_id = ${this.#v2 ? "coalesce(f.link_id, f.id)" : "f.id"})
         FROM files f WHERE id = ?`,
      )
      .raw(true);
    const r = this.#fileInfo.get(id) as unknown[] | undefined;
    if (!r) throw new IntegrityError(this.object, `a chunk is placed in entry ${id}, which the snapshot does not record`);
    return {
      path: this.#path(r[0]),
      chunks: r[6] as number,
      meta: { size: r[1] as number, mode: r[2] as number, uid: r[3] as number, gid: r[4] as number, mtimeUs: r[5] as number },
    };
  }

  /**
   * A file's chunks in file order (by its entry id; a hard link's are its set's), each with its
   * offset in the file, read on a second connection so it can run while entries() or
   * framePlans() is being iterated. Streams: a file of millions of chunks is never held in memory.
   */
  *chunksOf(fileId: number): Generator<FileChunk> {
    this.#lookupDb ??= openSqlite(this.path, { readonly: true, fileMustExist: true });
    const sql = `SELECT hex(c.hash) AS id, b.name AS blob, c.offset, c.length, c.raw_offset AS rawOffset, c.raw_length AS rawLength, c.compression,
                   ${this.#v2 ? "fc.offset" : "NULL"} AS fileOffset
                 FROM file_chunks fc JOIN chunks c ON c.hash = fc.chunk JOIN blobs b ON b.id = c.blob_id
                 WHERE fc.file_id = ${this.#v2 ? "(SELECT coalesce(link_id, id) FROM files WHERE id = ?)" : "?"} ORDER BY ${this.#v2 ? "fc.offset" : "fc.seq"}`;
    let end = 0;
    for (const row of this.#lookupDb.prepare(sql).iterate(fileId) as Iterable<Record<string, unknown>>) {
      const loc = toLocation(row, this.object);
      const fileOffset = this.#v2 ? (row["fileOffset"] as number) : end;
      end = fileOffset + loc.rawLength;
      yield { ...loc, fileOffset };
    }
  }

  /**
   * Every chunk location the snapshot records, in no promised order (check reads each blob's
   * chunks from these).
   */
  *chunkLocations(): Generator<ChunkLocation> {
    const rows = this.#db
      .prepare(
        "SELECT b.name AS blob, hex(c.hash) AS id, c.offset, c.length, c.raw_offset AS rawOffset, c.raw_length AS rawLength " +
          "FROM chunks c JOIN blobs b ON b.id = c.blob_id",
      )
      .iterate() as Iterable<{ blob: string; id: string; offset: number; length: number; rawOffset: number; rawLength: number }>;
    for (const row of rows) yield { ...row, id: row.id.toLowerCase() as ChunkId, blob: row.blob as BlobName, compression: COMPRESSION };
  }

  /** Paths of the files that take a chunk from `blob`, in path order. */
  filesUsing(blob: string): string[] {
    return this.#db
      .prepare(
        `SELECT DISTINCT f.path FROM files f JOIN file_chunks fc ON fc.file_id = f.id JOIN chunks c ON c.hash = fc.chunk
         JOIN blobs b ON b.id = c.blob_id WHERE b.name = ? ORDER BY f.path`,
      )
      .pluck()
      .all(blob)
      .map((p) => this.#path(p));
  }

  /** Paths of the files that use any of these chunks (ids in hex), in path order. */
  filesUsingChunks(ids: readonly string[]): string[] {
    return this.#db
      .prepare(
        `SELECT DISTINCT f.path FROM files f JOIN file_chunks fc ON fc.file_id = f.id
         WHERE fc.chunk IN (SELECT unhex(value) FROM json_each(?)) ORDER BY f.path`,
      )
      .pluck()
      .all(JSON.stringify(ids))
      .map((p) => this.#path(p));
  }

  /**
   * Entries at or below `prefix` that no backup writes, each with why: an entry below a file or
   * symlink (it would land on it or through it), a path recorded twice, a file whose size is not
   * what its chunks hold (10^13 bytes and no chunks would be a 10 TB sparse file) or whose chunks
   * have no location. A restore refuses these entries alone and restores the rest.
   */
  *flaws(prefix?: string): Generator<{ id: number; path: string; type: EntryType; error: IntegrityError }> {
    const whole = prefix === undefined || prefix === "";
    const within = (col: string) => (whole ? "1" : `(${col} = ? OR (${col} > ? AND ${col} < ?))`);
    const args = whole ? [] : this.#within(prefix);
    const rows = (sql: string) => this.#db.prepare(sql).safeIntegers(true).iterate(...args) as Iterable<Record<string, unknown>>;
    const flaw = (r: Record<string, unknown>, message: string) => {
      const path = this.#path(r["path"]);
      return {
        id: Number(r["id"]),
        path,
        type: (ENTRY_TYPES.has(r["type"] as string) ? r["type"] : "file") as EntryType,
        error: new IntegrityError(this.object, `${JSON.stringify(path)}: ${message}`),
      };
    };
    // Paths below p sort in [p + "/", p + "0"); in format 2 paths are BLOBs, and || makes text.
    const [below, beyond] = this.#v2 ? ["CAST(p.path || X'2F' AS BLOB)", "CAST(p.path || X'30' AS BLOB)"] : ["p.path || '/'", "p.path || '0'"];
    for (const r of rows(
      `SELECT c.id, c.path, c.type, p.path AS parent, p.type AS parentType FROM files p
       JOIN files c ON c.path >= ${below} AND c.path < ${beyond} WHERE p.type <> 'dir' AND ${within("c.path")}`,
    )) {
      const t = r["parentType"];
      const what = t === "file" ? "a file" : t === "symlink" ? "a symlink" : t === "fifo" || t === "chardev" || t === "blockdev" ? `a ${String(t)}` : "no directory";
      yield flaw(r, `refusing to restore through ${JSON.stringify(this.#path(r["parent"]))}: the snapshot records it as ${what}, which cannot have entries below it (crafted)`);
    }
    // In format 2 a path is a BLOB; SQL tells a TEXT 'a' from a BLOB X'61', a file system does not.
    const key = this.#v2 ? "CAST(path AS BLOB)" : "path";
    for (const r of rows(
      `SELECT f.id, f.path, f.type, d.n FROM files f JOIN (SELECT ${key} AS k, count(*) AS n FROM files GROUP BY k HAVING n > 1) d ON d.k = ${key.replace("path", "f.path")}
       WHERE ${within("f.path")}`,
    )) {
      yield flaw(r, `the snapshot records this path ${String(r["n"])} times: refusing every one (crafted)`);
    }
    if (this.#v2) {
      for (const r of this.#db.prepare("SELECT id, path, type FROM files WHERE typeof(path) <> 'blob'").safeIntegers(true).iterate() as Iterable<Record<string, unknown>>) {
        yield flaw(r, "the path is not stored as bytes, as format 2 stores every path (crafted)");
      }
    }
    if (!this.#v2) {
      for (const r of rows(
        `SELECT f.id, f.path, f.type, f.size, count(fc.chunk) AS refs, count(b.id) AS placed, total(c.raw_length) AS held
         FROM files f LEFT JOIN file_chunks fc ON fc.file_id = f.id LEFT JOIN chunks c ON c.hash = fc.chunk LEFT JOIN blobs b ON b.id = c.blob_id
         WHERE f.type = 'file' AND ${within("f.path")} GROUP BY f.id HAVING placed < refs OR held <> f.size`,
      )) {
        const [refs, placed] = [Number(r["refs"]), Number(r["placed"])];
        yield flaw(r, placed < refs ? `${refs - placed} of its ${refs} chunk references have no blob location` : sizeFlaw(r["size"] as bigint, Number(r["held"])));
      }
      return;
    }
    // Format 2: a gap between chunks is a hole, so a file may hold less than its size, never
    // more. Checked on each file's last chunk only, one lookup per file rather than one per
    // chunk (a second join of every chunk cost a restore of 100k chunks ~120 ms): an earlier
    // chunk reaching past the size overlaps later ones, which makes wrong bytes, as a crafted
    // snapshot can anyway, and the file is cut to its size when finished. References to chunks
    // without a blob location fail their files in the plan, before anything of them is written
    // (framePlans gives them first), and dumpFile counts them.
    for (const r of rows(
      `SELECT x.*, x.lastOffset + c.raw_length AS ends FROM (
         SELECT f.id, f.path, f.type, f.size, f.link_id AS linkId, l.id AS leader, sum(fc.offset < 0) AS negative,
                max(fc.offset) AS lastOffset, fc.chunk AS lastChunk
         FROM files f LEFT JOIN files l ON l.id = f.link_id AND l.type = 'file' AND l.link_id = l.id
         LEFT JOIN file_chunks fc ON fc.file_id = coalesce(f.link_id, f.id)
         WHERE f.type = 'file' AND ${within("f.path")} GROUP BY f.id) x
       LEFT JOIN chunks c ON c.hash = x.lastChunk
       WHERE (x.linkId IS NOT NULL AND x.leader IS NULL) OR x.negative > 0 OR x.lastOffset + c.raw_length > x.size`,
    )) {
      yield flaw(
        r,
        r["linkId"] !== null && r["leader"] === null
          ? `a hard link to entry ${String(r["linkId"])}, which is not the first file of a link set (crafted)`
          : Number(r["negative"]) > 0
            ? "a chunk at a negative offset (crafted)"
            : `the entry records size ${String(r["size"])} but its chunks reach byte ${String(r["ends"])}`,
      );
    }
  }

  // ---- diff and stats (issue 16) ----

  /** The snapshot's format (FORMAT.md §4): what it records and how. */
  get format(): number {
    return this.meta.format;
  }

  /**
   * Entries at or below `prefix` in path order (bytes order, in both formats), each with a
   * digest of its content as chunks at file offsets (a link set's for a hard link; format 1's
   * offsets are summed from its chunk sequence, so both formats give the same digest for the
   * same content) and of its extended attributes. The chunk list is concatenated in SQL, one row
   * per entry, not one query per file.
   */
  *diffEntries(prefix?: string): Generator<DiffEntry> {
    const content = this.#v2
      ? `(SELECT group_concat(hex(fc.chunk) || '@' || fc.offset, ',' ORDER BY fc.offset) FROM file_chunks fc WHERE fc.file_id = coalesce(f.link_id, f.id))`
      : `(SELECT group_concat(x.h || '@' || x.o, ',' ORDER BY x.s) FROM (
           SELECT fc.seq AS s, hex(fc.chunk) AS h, SUM(coalesce(c.raw_length, 0)) OVER (ORDER BY fc.seq) - coalesce(c.raw_length, 0) AS o
           FROM file_chunks fc LEFT JOIN chunks c ON c.hash = fc.chunk WHERE fc.file_id = f.id) x)`;
    const xattrs = this.#v2 ? `(SELECT group_concat(hex(x.name) || '=' || hex(x.value), ',' ORDER BY x.name) FROM xattrs x WHERE x.file_id = f.id)` : "NULL";
    const cols =
      this.#columns("f") +
      `, CASE WHEN f.type = 'file' THEN ${content} END AS content, ${xattrs} AS xattrs`;
    const whole = prefix === undefined || prefix === "";
    const stmt = this.#db.prepare(`SELECT ${cols} FROM files f ${whole ? "" : "WHERE f.path = ? OR (f.path > ? AND f.path < ?)"} ORDER BY f.path`);
    const digest = (v: unknown) => (v === null || v === undefined ? null : createHash("sha256").update(String(v)).digest("hex"));
    for (const row of stmt.safeIntegers(true).iterate(...(whole ? [] : this.#within(prefix))) as Iterable<Record<string, unknown>>) {
      const entry = this.#toEntry(row);
      yield { ...entry, content: digest(row["content"]) ?? (entry.type === "file" ? "" : null), xattrs: this.#v2 ? (digest(row["xattrs"]) ?? "") : null };
    }
  }

  /** Files (hard links each) and the sum of their sizes: the snapshot's logical size. */
  fileTotals(): { files: number; bytes: number } {
    const r = this.#db.prepare("SELECT count(*), total(size) FROM files WHERE type = 'file'").raw(true).get() as [number, number];
    return { files: r[0], bytes: r[1] };
  }

  /**
   * Attaches this snapshot's database to `db` as schema `alias`, for set operations between
   * snapshots in SQL (usedChunksSql); only ever read there.
   */
  attachTo(db: Database.Database, alias: string): void {
    attachSqlite(db, this.path, alias);
  }

  /**
   * A SELECT, for a connection this snapshot is attached to as `alias`, of the distinct chunks
   * its files use (at or below `prefix`): hash, raw (bytes of the chunk) and stored. A zstd frame
   * can hold several small chunks; its length counts as the stored bytes of its first chunk
   * (raw offset 0) and the others count none, so any set of whole frames adds up exactly, at
   * the cost of a plain scan: sharing the length out needs a sort of every chunk by frame, which
   * took longer than everything else stats does. The whole snapshot comes in hash order (the
   * table's key), which keeps a tally's inserts local.
   */
  usedChunksSql(alias: string, prefix?: string): { sql: string; args: (string | Buffer)[] } {
    const cols = "c.hash AS hash, c.raw_length AS raw, CASE WHEN c.raw_offset = 0 THEN c.length ELSE 0 END AS stored";
    // The chunks table lists exactly the chunks the files reference (SnapshotBuilder fills it
    // from them), so the whole snapshot is a scan of it, not a lookup per reference.
    if (prefix === undefined || prefix === "") return { sql: `SELECT ${cols} FROM ${alias}.chunks c`, args: [] };
    return {
      sql: `SELECT ${cols} FROM ${alias}.chunks c WHERE c.hash IN (
              SELECT fc.chunk FROM ${alias}.files f JOIN ${alias}.file_chunks fc ON fc.file_id = ${this.#v2 ? "coalesce(f.link_id, f.id)" : "f.id"}
              WHERE f.type = 'file' AND (f.path = ? OR (f.path > ? AND f.path < ?)))`,
      args: this.#within(prefix),
    };
  }

  /**
   * The distinct chunks files at or below `prefix` use in `to` and not in `from` (there at or
   * below `prefix` too): their number, raw and stored bytes (usedChunksSql). Both databases are
   * attached to a throwaway connection, so the sets are compared in SQL, not held in memory.
   */
  static chunksOnlyIn(to: SnapshotReader, from: SnapshotReader, prefix?: string): { chunks: number; raw: number; stored: number } {
    const db = openSqlite(":memory:");
    try {
      to.attachTo(db, "b");
      from.attachTo(db, "a");
      const b = to.usedChunksSql("b", prefix);
      const a = from.usedChunksSql("a", prefix);
      const r = db
        .prepare(`SELECT count(*), total(raw), total(stored) FROM (${b.sql}) WHERE hash NOT IN (SELECT hash FROM (${a.sql}))`)
        .raw(true)
        .get(...b.args, ...a.args) as [number, number, number];
      return { chunks: r[0], raw: r[1], stored: r[2] };
    } finally {
      db.close();
    }
  }

  /** The distinct chunks this snapshot's files use: their number, raw and stored bytes (usedChunksSql). */
  chunkTotals(): { chunks: number; raw: number; stored: number } {
    const db = new Database(":memory:");
    try {
      this.attachTo(db, "s");
      const r = db.prepare(`SELECT count(*), total(raw), total(stored) FROM (${this.usedChunksSql("s").sql})`).raw(true).get() as [number, number, number];
      return { chunks: r[0], raw: r[1], stored: r[2] };
    } finally {
      db.close();
    }
  }

  // ---- ls, find (issue 16) ----

  /** The columns #toEntry reads. */
  #columns(table = ""): string {
    const t = table === "" ? "" : `${table}.`;
    return (
      `${t}id, ${t}path, ${t}type, ${t}mode, ${t}uid, ${t}gid, ${t}size, ${t}mtime_ns AS mtimeNs, ${t}link_target AS linkTarget, ${t}status` +
      (this.#v2 ? `, ${t}user_name AS userName, ${t}group_name AS groupName, ${t}rdev, ${t}link_id AS linkId` : "")
    );
  }

  #seek: Database.Statement[] | undefined;
  #pathOf: Database.Statement | undefined;

  /**
   * The first entry, in path order, at or after `from` and before `before` (no bound when
   * undefined): one B-tree seek, so a listing can hop from one child of a directory to the
   * next without reading what lies below each. On the lookup connection: it may run while
   * entries() is being iterated.
   */
  nextEntry(from: string, before?: string): EntryRow | undefined {
    this.#lookupDb ??= openSqlite(this.path, { readonly: true, fileMustExist: true });
    const db = this.#lookupDb;
    this.#seek ??= [
      db.prepare(`SELECT ${this.#columns()} FROM files WHERE path >= ? ORDER BY path LIMIT 1`).safeIntegers(true),
      db.prepare(`SELECT ${this.#columns()} FROM files WHERE path >= ? AND path < ? ORDER BY path LIMIT 1`).safeIntegers(true),
    ];
    const row = (before === undefined ? this.#seek[0]!.get(this.#key(from)) : this.#seek[1]!.get(this.#key(from), this.#key(before))) as
      | Record<string, unknown>
      | undefined;
    return row === undefined ? undefined : this.#toEntry(row);
  }

  /** The path of the entry with this id (a hard link set's first entry), if there is one. */
  pathOf(id: number): string | undefined {
    this.#lookupDb ??= openSqlite(this.path, { readonly: true, fileMustExist: true });
    this.#pathOf ??= this.#lookupDb.prepare("SELECT path FROM files WHERE id = ?").pluck();
    const path = this.#pathOf.get(id);
    return path === undefined ? undefined : this.#path(path);
  }

  /**
   * Entries that may match a search, in path order: at or below `under`, within the mtime and
   * size bounds, and, when `names` is given, whose path SQLite finds LIKE or GLOB one of them
   * (a prefilter the caller checks exactly: see SearchFilter.names).
   */
  *search(filter: SearchFilter): Generator<EntryRow> {
    const where: string[] = [];
    const args: unknown[] = [];
    if (filter.under !== undefined && filter.under !== "") {
      where.push("(path = ? OR (path > ? AND path < ?))");
      args.push(...this.#within(filter.under));
    }
    const bound = (cond: string, value: unknown) => {
      if (value === undefined) return;
      where.push(cond);
      args.push(value);
    };
    bound("mtime_ns > ?", filter.newerNs);
    bound("mtime_ns < ?", filter.olderNs);
    bound("size > ?", filter.largerThan);
    bound("size < ?", filter.smallerThan);
    if (filter.names !== undefined) {
      const any: string[] = [];
      // GLOB and LIKE see no match in a BLOB: compare the path's bytes as text.
      const path = this.#v2 ? "CAST(path AS TEXT)" : "path";
      for (const n of filter.names) {
        const op = n.caseless ? "LIKE" : "GLOB";
        const esc = n.caseless ? " ESCAPE '\\'" : "";
        // A base name is the whole path at the top, or what follows the last `/`.
        if (n.baseName) {
          any.push(`${path} ${op} ?${esc}`, `${path} ${op} ?${esc}`);
          args.push(n.pattern, (n.caseless ? "%/" : "*/") + n.pattern);
        } else {
          any.push(`${path} ${op} ?${esc}`);
          args.push(n.pattern);
        }
      }
      where.push(any.length === 0 ? "0" : `(${any.join(" OR ")})`);
    }
    const sql = `SELECT ${this.#columns()} FROM files ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""} ORDER BY path`;
    for (const row of this.#db.prepare(sql).safeIntegers(true).iterate(...args) as Iterable<Record<string, unknown>>) {
      yield this.#toEntry(row);
    }
  }
}

/** An entry with digests of what diff compares beyond its columns. */
export interface DiffEntry extends EntryRow {
  /** Digest of a file's chunks at their offsets ("" for none); null for other types. */
  content: string | null;
  /** Digest of its extended attributes ("" for none); null in format 1, which records none. */
  xattrs: string | null;
}

/** What search() narrows to; every bound is exclusive. */
export interface SearchFilter {
  under?: string;
  newerNs?: bigint;
  olderNs?: bigint;
  largerThan?: number;
  smallerThan?: number;
  /**
   * SQL GLOB (or, `caseless`, LIKE with `\` as escape) patterns an entry's path must match one
   * of: the whole path, or with `baseName` its last component. They must accept at least every
   * path the caller's own matcher accepts; the caller checks each row it gets.
   */
  names?: readonly { pattern: string; baseName: boolean; caseless: boolean }[];
}

/** Why a file entry is refused whose recorded size is not what its chunks hold. */
function sizeFlaw(size: number | bigint, held: number): string {
  return `the entry records size ${String(size)} but its chunks hold ${held} bytes`;
}

/** Names a reader must understand to read correctly; the chunker's is not among them (FORMAT.md §7). */
const READS = { compression: COMPRESSION, chunkHash: "sha256", blobHash: "sha256" } as const;

/** Refuses what this version cannot read rather than guessing: a wrong guess misreports sound data. */
function refuseUnknown(meta: SnapshotMeta, object: string): void {
  const format: unknown = meta.format;
  if (typeof format !== "number" || !Number.isSafeInteger(format) || format < OLDEST_SNAPSHOT_FORMAT) {
    throw new IntegrityError(object, `snapshot format ${JSON.stringify(format)} is not a format vaultik knows`);
  }
  if (format > SNAPSHOT_FORMAT) {
    throw new IntegrityError(object, `snapshot format ${format} is newer than this vaultik reads (${SNAPSHOT_FORMAT}); upgrade vaultik`);
  }
  for (const [key, known] of Object.entries(READS) as [keyof typeof READS, string][]) {
    if (meta[key] !== known) {
      throw new IntegrityError(object, `snapshot uses ${key} ${JSON.stringify(meta[key])}, which this vaultik does not read (it reads ${JSON.stringify(known)}); upgrade vaultik`);
    }
  }
}

/** A chunk location from a row with the columns chunksOf() selects. */
function toLocation(row: Record<string, unknown>, object: string): ChunkLocation {
  if (row["compression"] !== COMPRESSION) {
    throw new IntegrityError(object, `chunk ${String(row["id"])} uses unknown compression ${String(row["compression"])}`);
  }
  return {
    id: (row["id"] as string).toLowerCase() as ChunkId,
    blob: row["blob"] as BlobName,
    offset: row["offset"] as number,
    length: row["length"] as number,
    rawOffset: row["rawOffset"] as number,
    rawLength: row["rawLength"] as number,
    compression: COMPRESSION,
  };
}

function readMeta(db: Database.Database, object: string): SnapshotMeta {
  const rows = db.prepare("SELECT key, value FROM meta").all() as { key: string; value: string }[];
  const raw = new Map(rows.map((r) => [r.key, r.value]));
  const text = (key: string): string => {
    const v = raw.get(key);
    if (v === undefined) throw new IntegrityError(object, `snapshot database has no meta.${key}`);
    return v;
  };
  const json = <T>(key: string): T => JSON.parse(text(key)) as T;
  return {
    format: json<number>("format"),
    id: text("id"),
    host: text("host"),
    time: text("time"),
    sourceDirs: json<string[]>("sourceDirs"),
    vaultikVersion: text("vaultikVersion"),
    chunker: text("chunker"),
    chunkSize: json<number>("chunkSize"),
    chunkHash: text("chunkHash"),
    blobHash: text("blobHash"),
    compression: text("compression"),
    stats: raw.has("stats") ? json<SnapshotStats>("stats") : undefined,
  };
}
