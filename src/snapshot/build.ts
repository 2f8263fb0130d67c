import { rmSync } from "node:fs";
import Database from "better-sqlite3";
import { unpackChunks } from "../catalog/codec.js";
import { shareView, type PathSource, type SharedView } from "../catalog/attach.js";
import type { Catalog } from "../catalog/db.js";
import { IntegrityError } from "../errors.js";
import { COMPRESSION } from "../model/chunk.js";
import { encodePath } from "../model/path-bytes.js";
import { SNAPSHOT_FORMAT, SNAPSHOT_SCHEMA, type FileChunkRef, type SnapshotEntry, type SnapshotMeta, type SnapshotStats } from "./schema.js";
import { openSqlite } from "../catalog/sqlite.js";

// Builds a snapshot database in a local temp file while the backup runs. It is metadata only
// (paths, modes, chunk ids), the same kind of data the local index already keeps on this host.
// Chunk locations are filled in at the end from the catalog, once every blob is stored.

export class SnapshotBuilder implements PathSource {
  private readonly db: Database.Database;
  private readonly files: RowBatch;
  private readonly chunks: RowBatch;
  private readonly xattrs: RowBatch;
  private readonly insertError: Database.Statement;
  private readonly setLinkId: Database.Statement;
  private lastId = 0;
  private readonly stats: SnapshotStats = { files: 0, dirs: 0, symlinks: 0, bytes: 0, errors: 0, changed: 0, special: 0, hardLinks: 0, sockets: 0 };

  constructor(
    readonly path: string,
    private readonly meta: Omit<SnapshotMeta, "format" | "stats">,
  ) {
    rmSync(path, { force: true });
    this.db = openSqlite(path);
    // A temp file rebuilt from scratch on any failure: durability would only cost time.
    this.db.pragma("journal_mode = OFF");
    this.db.pragma("synchronous = OFF");
    this.db.exec(SNAPSHOT_SCHEMA);
    // Rows go in as multi-row INSERTs: one statement per row cost ~2x as much per file (a
    // statement's fixed cost is most of a small row's), and an unchanged re-run writes every
    // file's row and chunk rows again. Ids are assigned here, so add() still returns one.
    this.files = new RowBatch(this.db, "files(id, path, type, mode, uid, gid, user_name, group_name, size, mtime_ns, link_target, rdev, link_id, status)", 14);
    this.chunks = new RowBatch(this.db, "file_chunks(file_id, offset, chunk)", 3);
    this.xattrs = new RowBatch(this.db, "xattrs(file_id, name, value)", 3);
    this.insertError = this.db.prepare("INSERT INTO errors(path, message) VALUES (?, ?)");
    this.setLinkId = this.db.prepare("UPDATE files SET link_id = id WHERE id = ? AND type = 'file'");
    this.db.exec("BEGIN");
  }

  /**
   * Adds an entry and returns its id. `chunks` are a file's content, in offset order; a gap
   * between them (or after the last, up to `size`) is a hole. `linkOf` makes a file another
   * name of an entry added before (a hard link): it takes no chunks of its own, and restore
   * links it to that entry's inode.
   */
  add(entry: SnapshotEntry, chunks: Buffer | readonly FileChunkRef[] = [], linkOf?: number): number {
    if (linkOf !== undefined) {
      this.flush();
      this.setLinkId.run(linkOf);
      this.stats.hardLinks!++;
    }
    const id = ++this.lastId;
    this.files.push(
      id, encodePath(entry.path), entry.type, entry.mode, entry.uid, entry.gid, entry.userName ?? null, entry.groupName ?? null,
      entry.size, entry.mtimeNs, entry.linkTarget === undefined ? null : encodePath(entry.linkTarget), entry.rdev ?? null,
      linkOf ?? null, entry.status ?? null,
    );
    if (linkOf === undefined) for (const c of Buffer.isBuffer(chunks) ? unpackChunks(chunks) : chunks) this.chunks.push(id, c.offset, c.hash);
    for (const x of entry.xattrs ?? []) this.xattrs.push(id, encodePath(x.name), x.value);
    if (this.files.full || this.chunks.full || this.xattrs.full) this.flush();
    if (entry.type === "file") {
      this.stats.files++;
      this.stats.bytes += entry.size;
      if (entry.status === "changed") this.stats.changed++;
    } else if (entry.type === "dir") this.stats.dirs++;
    else if (entry.type === "symlink") this.stats.symlinks++;
    else this.stats.special!++;
    return id;
  }

  /** Writes the rows waiting in batches: files first, which the other rows reference. */
  private flush(): void {
    this.files.flush();
    this.chunks.flush();
    this.xattrs.flush();
  }

  /** Counts a socket the walk met: nothing can restore one, so it is not recorded. */
  addSocket(): void {
    this.stats.sockets!++;
  }

  /** Records a path that could not be backed up (unreadable, vanished). */
  addError(path: string, message: string): void {
    this.insertError.run(encodePath(path), message);
    this.stats.errors++;
  }

  get currentStats(): Readonly<SnapshotStats> {
    return this.stats;
  }

  /**
   * Resolves every referenced chunk to its blob through the catalog and writes the meta table.
   * A chunk the catalog cannot place means its blob is not known to be stored: the snapshot
   * would not restore, so this refuses to finish.
   */
  finish(catalog: Catalog): { stats: SnapshotStats; blobs: string[] } {
    this.flush();
    this.db.exec("COMMIT");
    // One SQL join against the catalog file instead of a lookup per chunk.
    const located = catalog.shareChunkLocations(this.db);
    let blobs: string[];
    try {
      this.db.exec("BEGIN");
      this.locate(located);
      const meta: SnapshotMeta = { ...this.meta, format: SNAPSHOT_FORMAT, stats: this.stats };
      const setMeta = this.db.prepare("INSERT INTO meta(key, value) VALUES (?, ?)");
      for (const [key, value] of Object.entries(meta)) {
        setMeta.run(key, typeof value === "string" ? value : JSON.stringify(value));
      }
      blobs = this.db.prepare("SELECT name FROM main.blobs").pluck().all() as string[];
      this.db.exec("COMMIT");
    } catch (err) {
      if (this.db.inTransaction) this.db.exec("ROLLBACK");
      throw err;
    } finally {
      // Detaching waits for the transaction's end.
      located.close();
    }
    this.db.close();
    return { stats: this.stats, blobs };
  }

  /**
   * Fills blobs and chunks from `located` (the catalog's chunk locations). A chunk the catalog
   * cannot place means its blob is not known to be stored.
   */
  private locate(located: SharedView): void {
    this.db.exec(`
      CREATE TEMP TABLE wanted AS SELECT DISTINCT chunk FROM file_chunks;
      INSERT INTO blobs(name, size, header_length)
        SELECT DISTINCT l.blob, l.blob_size, l.header_length FROM temp.wanted w JOIN ${located.name} l ON l.hash = w.chunk;
      INSERT INTO chunks(hash, blob_id, offset, length, raw_offset, raw_length, compression)
        SELECT l.hash, nb.id, l.offset, l.length, l.raw_offset, l.raw_length, '${COMPRESSION}' FROM temp.wanted w
        JOIN ${located.name} l ON l.hash = w.chunk JOIN main.blobs nb ON nb.name = l.blob;
    `);
    const missing = this.db
      .prepare("SELECT hex(w.chunk) FROM temp.wanted w LEFT JOIN main.chunks c ON c.hash = w.chunk WHERE c.hash IS NULL LIMIT 1")
      .pluck()
      .get() as string | undefined;
    this.db.exec("DROP TABLE temp.wanted");
    if (missing !== undefined) {
      throw new IntegrityError(`chunk ${missing.toLowerCase()}`, "is referenced but its blob is not recorded as stored");
    }
  }

  /** The walked paths, for the catalog to drop what the walk no longer saw (after finish). */
  sharePaths(conn: Database.Database): SharedView {
    // Paths are BLOBs (bytes): the catalog compares its own in that form, so the UNIQUE index serves.
    return shareView(conn, this.path, "snap", "snapshot_paths", "SELECT path FROM snap.files");
  }

  /** Abandons the snapshot and removes its temp file. */
  discard(): void {
    if (this.db.open) this.db.close();
    rmSync(this.path, { force: true });
  }
}

/** Rows of one table waiting to go in as one multi-row INSERT. */
class RowBatch {
  static readonly ROWS = 64;
  private readonly many: Database.Statement;
  private readonly one: Database.Statement;
  private values: unknown[] = [];

  constructor(db: Database.Database, into: string, private readonly columns: number) {
    const row = `(${new Array(columns).fill("?").join(", ")})`;
    this.many = db.prepare(`INSERT INTO ${into} VALUES ${new Array(RowBatch.ROWS).fill(row).join(", ")}`);
    this.one = db.prepare(`INSERT INTO ${into} VALUES ${row}`);
  }

  push(...row: unknown[]): void {
    for (const v of row) this.values.push(v);
  }

  get full(): boolean {
    return this.values.length >= RowBatch.ROWS * this.columns;
  }

  flush(): void {
    const v = this.values;
    let at = 0;
    for (; at + RowBatch.ROWS * this.columns <= v.length; at += RowBatch.ROWS * this.columns) {
      this.many.run(v.slice(at, at + RowBatch.ROWS * this.columns));
    }
    for (; at < v.length; at += this.columns) this.one.run(v.slice(at, at + this.columns));
    this.values = [];
  }
}
