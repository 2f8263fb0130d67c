import Database from "better-sqlite3";
import { IntegrityError, errorMessage } from "../errors.js";
import type { ChunkLocation } from "../model/chunk.js";
import type { BlobName, ChunkId } from "../model/ids.js";
import { COMPRESSION } from "../model/chunk.js";
import { SNAPSHOT_FORMAT, type EntryType, type SnapshotEntry, type SnapshotMeta, type SnapshotStats } from "./schema.js";
import { belowBounds } from "../util/paths.js";

// Read access to a decrypted snapshot database on the recovery machine.

export interface EntryRow extends Omit<SnapshotEntry, "linkTarget" | "status"> {
  id: number;
  linkTarget: string | null;
  status: string | null;
  /** Chunks of a file, when asked for. */
  chunks?: number;
}

/** One chunk to place: in blob `loc.blob`, destined for `fileId` at byte `fileOffset`. */
export interface Placement {
  loc: ChunkLocation;
  fileId: number;
  /** Snapshot path of the file. */
  path: string;
  fileOffset: number;
  /** Ciphertext size of the chunk's blob. */
  blobSize: number;
  /** How many chunks the file has in all (this one is one of them). */
  fileChunks: number;
  /** The file's entry, for setting its metadata once its last chunk is written. */
  file: { size: number; mode: number; uid: number; gid: number; mtimeUs: number };
}

export class SnapshotReader {
  // Private: the snapshot schema's SQL stays in snapshot/, callers ask through methods.
  readonly #db: Database.Database;
  /** A second connection for per-file lookups: better-sqlite3 runs nothing else on a connection while one of its iterators is open. */
  #lookupDb: Database.Database | undefined;
  readonly meta: SnapshotMeta;

  constructor(
    readonly path: string,
    readonly object: string,
  ) {
    try {
      this.#db = new Database(path, { readonly: true, fileMustExist: true });
      this.meta = readMeta(this.#db, object);
    } catch (err) {
      if (err instanceof IntegrityError) throw err;
      throw new IntegrityError(object, `not a readable snapshot database: ${errorMessage(err)}`, { cause: err });
    }
    refuseUnknown(this.meta, object);
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
      "id, path, type, mode, uid, gid, size, mtime_ns AS mtimeNs, link_target AS linkTarget, status" +
      (withChunks ? ", (SELECT count(*) FROM file_chunks fc WHERE fc.file_id = files.id) AS chunks" : "");
    const stmt =
      prefix === undefined || prefix === ""
        ? this.#db.prepare(`SELECT ${cols} FROM files ORDER BY path`)
        : this.#db.prepare(`SELECT ${cols} FROM files WHERE path = ? OR (path > ? AND path < ?) ORDER BY path`);
    const args = prefix === undefined || prefix === "" ? [] : [prefix, ...belowBounds(prefix)];
    for (const row of stmt.safeIntegers(true).iterate(...args) as Iterable<Record<string, unknown>>) {
      yield toEntry(row, this.object);
    }
  }

  entry(path: string): EntryRow | undefined {
    for (const e of this.entries(path)) if (e.path === path) return e;
    return undefined;
  }

  errors(): { path: string; message: string }[] {
    return this.#db.prepare("SELECT path, message FROM errors ORDER BY path").all() as { path: string; message: string }[];
  }

  /** Every blob the snapshot references, with its size. */
  blobs(): { name: string; size: number }[] {
    return this.#db.prepare("SELECT name, size FROM blobs ORDER BY name").all() as { name: string; size: number }[];
  }

  /**
   * Every chunk placement for the files at or below `prefix`, grouped by blob and in offset order
   * within a blob, so a restore can read each blob once, front to back.
   */
  *placements(prefix?: string): Generator<Placement> {
    // Only regular files take chunks; a crafted database could attach chunks to anything.
    const whole = prefix === undefined || prefix === "";
    const filter = whole ? "WHERE f.type = 'file'" : "WHERE f.type = 'file' AND (f.path = ? OR (f.path > ? AND f.path < ?))";
    const args = whole ? [] : [prefix, ...belowBounds(prefix)];
    // Each file's running offset and chunk count come from one window pass over its rows in
    // (file_id, seq) order, not from a count per row: that count made a file of n chunks cost
    // n² steps (a 10 MB file at 256 B chunks took 2 minutes to restore). The count is of placed
    // chunks; entries() counts references, and run() refuses a snapshot where they differ
    // (unplacedChunks), so both passes agree on which files have one chunk.
    const stmt = this.#db.prepare(`
      WITH placed AS (
        SELECT fc.file_id, c.hash, c.blob_id, c.offset, c.length, c.raw_offset, c.raw_length, c.compression,
               count(*) OVER whole AS file_chunks,
               SUM(c.raw_length) OVER running - c.raw_length AS file_offset
        FROM files f JOIN file_chunks fc ON fc.file_id = f.id JOIN chunks c ON c.hash = fc.chunk ${filter}
        WINDOW running AS (PARTITION BY fc.file_id ORDER BY fc.seq),
               whole AS (running ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
      )
      SELECT p.file_id AS fileId, f.path, p.file_offset AS fileOffset, hex(p.hash) AS id, b.name AS blob,
             b.size AS blobSize, p.offset, p.length, p.raw_offset AS rawOffset, p.raw_length AS rawLength, p.compression,
             p.file_chunks AS fileChunks, f.size, f.mode, f.uid, f.gid, f.mtime_ns / 1000 AS mtimeUs
      FROM placed p JOIN blobs b ON b.id = p.blob_id JOIN files f ON f.id = p.file_id
      ORDER BY b.name, p.offset, p.raw_offset, p.file_id, p.file_offset`);
    for (const row of stmt.iterate(...args) as Iterable<Record<string, unknown>>) {
      yield {
        fileId: row["fileId"] as number,
        path: row["path"] as string,
        blobSize: row["blobSize"] as number,
        fileOffset: row["fileOffset"] as number,
        fileChunks: row["fileChunks"] as number,
        file: {
          size: row["size"] as number,
          mode: row["mode"] as number,
          uid: row["uid"] as number,
          gid: row["gid"] as number,
          mtimeUs: row["mtimeUs"] as number,
        },
        loc: toLocation(row, this.object),
      };
    }
  }

  /**
   * A file's chunks in file order (by its entry id), read on a second connection so it can run
   * while entries() or placements() is being iterated. Streams: a file of millions of chunks
   * is never held in memory.
   */
  *chunksOf(fileId: number): Generator<ChunkLocation> {
    this.#lookupDb ??= new Database(this.path, { readonly: true, fileMustExist: true });
    const rows = this.#lookupDb
      .prepare(
        `SELECT hex(c.hash) AS id, b.name AS blob, c.offset, c.length, c.raw_offset AS rawOffset, c.raw_length AS rawLength, c.compression
         FROM file_chunks fc JOIN chunks c ON c.hash = fc.chunk JOIN blobs b ON b.id = c.blob_id
         WHERE fc.file_id = ? ORDER BY fc.seq`,
      )
      .iterate(fileId) as Iterable<Record<string, unknown>>;
    for (const row of rows) yield toLocation(row, this.object);
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
      .all(blob) as string[];
  }

  /** Paths of the files that use any of these chunks (ids in hex), in path order. */
  filesUsingChunks(ids: readonly string[]): string[] {
    return this.#db
      .prepare(
        `SELECT DISTINCT f.path FROM files f JOIN file_chunks fc ON fc.file_id = f.id
         WHERE fc.chunk IN (SELECT unhex(value) FROM json_each(?)) ORDER BY f.path`,
      )
      .pluck()
      .all(JSON.stringify(ids)) as string[];
  }

  /** Chunks per file whose hash has no location: a damaged snapshot database. */
  unplacedChunks(): number {
    return this.#db
      .prepare(
        "SELECT count(*) FROM file_chunks fc LEFT JOIN chunks c ON c.hash = fc.chunk LEFT JOIN blobs b ON b.id = c.blob_id WHERE b.id IS NULL",
      )
      .pluck()
      .get() as number;
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
    const args = whole ? [] : [prefix, ...belowBounds(prefix)];
    const rows = (sql: string) => this.#db.prepare(sql).safeIntegers(true).iterate(...args) as Iterable<Record<string, unknown>>;
    const flaw = (r: Record<string, unknown>, message: string) => ({
      id: Number(r["id"]),
      path: String(r["path"]),
      type: (ENTRY_TYPES.has(r["type"] as string) ? r["type"] : "file") as EntryType,
      error: new IntegrityError(this.object, `${JSON.stringify(String(r["path"]))}: ${message}`),
    });
    for (const r of rows(
      `SELECT c.id, c.path, c.type, p.path AS parent, p.type AS parentType FROM files p
       JOIN files c ON c.path >= p.path || '/' AND c.path < p.path || '0' WHERE p.type <> 'dir' AND ${within("c.path")}`,
    )) {
      const what = r["parentType"] === "file" ? "a file" : r["parentType"] === "symlink" ? "a symlink" : "no directory";
      yield flaw(r, `refusing to restore through ${JSON.stringify(r["parent"])}: the snapshot records it as ${what}, which cannot have entries below it (crafted)`);
    }
    for (const r of rows(
      `SELECT f.id, f.path, f.type, d.n FROM files f JOIN (SELECT path, count(*) AS n FROM files GROUP BY path HAVING n > 1) d ON d.path = f.path
       WHERE ${within("f.path")}`,
    )) {
      yield flaw(r, `the snapshot records this path ${String(r["n"])} times: refusing every one (crafted)`);
    }
    for (const r of rows(
      `SELECT f.id, f.path, f.type, f.size, count(fc.chunk) AS refs, count(b.id) AS placed, total(c.raw_length) AS held
       FROM files f LEFT JOIN file_chunks fc ON fc.file_id = f.id LEFT JOIN chunks c ON c.hash = fc.chunk LEFT JOIN blobs b ON b.id = c.blob_id
       WHERE f.type = 'file' AND ${within("f.path")} GROUP BY f.id HAVING placed < refs OR held <> f.size`,
    )) {
      const [refs, placed] = [Number(r["refs"]), Number(r["placed"])];
      yield flaw(
        r,
        placed < refs
          ? `${refs - placed} of its ${refs} chunk references have no blob location`
          : sizeFlaw(r["size"] as bigint, Number(r["held"])),
      );
    }
  }
}

/** Why a file entry is refused whose recorded size is not what its chunks hold. */
export function sizeFlaw(size: number | bigint, held: number): string {
  return `the entry records size ${String(size)} but its chunks hold ${held} bytes`;
}

/** Names a reader must understand to read correctly; the chunker's is not among them (FORMAT.md §7). */
const READS = { compression: COMPRESSION, chunkHash: "sha256", blobHash: "sha256" } as const;

/** Refuses what this version cannot read rather than guessing: a wrong guess misreports sound data. */
function refuseUnknown(meta: SnapshotMeta, object: string): void {
  const format: unknown = meta.format;
  if (typeof format !== "number" || !Number.isSafeInteger(format) || format < 1) {
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

/** A chunk location from a row with the columns placements() and chunksOf() select. */
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

const ENTRY_TYPES = new Set(["file", "dir", "symlink"]);

function toEntry(row: Record<string, unknown>, object: string): EntryRow {
  // The schema's CHECK says so, but a crafted database need not have that schema.
  if (!ENTRY_TYPES.has(row["type"] as string)) {
    throw new IntegrityError(object, `entry ${JSON.stringify(row["path"])} has unknown type ${JSON.stringify(row["type"])}`);
  }
  return {
    id: Number(row["id"]),
    path: row["path"] as string,
    type: row["type"] as EntryType,
    mode: Number(row["mode"]),
    uid: Number(row["uid"]),
    gid: Number(row["gid"]),
    size: Number(row["size"]),
    mtimeNs: BigInt(row["mtimeNs"] as bigint),
    linkTarget: (row["linkTarget"] as string | null) ?? null,
    status: (row["status"] as string | null) ?? null,
    ...(row["chunks"] === undefined ? {} : { chunks: Number(row["chunks"]) }),
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
