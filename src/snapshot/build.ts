import { rmSync } from "node:fs";
import Database from "better-sqlite3";
import type { Catalog } from "../catalog/db.js";
import { IntegrityError } from "../errors.js";
import { COMPRESSION } from "../model/chunk.js";
import { SNAPSHOT_FORMAT, SNAPSHOT_SCHEMA, type SnapshotEntry, type SnapshotMeta, type SnapshotStats } from "./schema.js";

// Builds a snapshot database in a local temp file while the backup runs. It is metadata only
// (paths, modes, chunk ids), the same kind of data the local index already keeps on this host.
// Chunk locations are filled in at the end from the catalog, once every blob is stored.

export class SnapshotBuilder {
  private readonly db: Database.Database;
  private readonly insertFile: Database.Statement;
  private readonly insertChunk: Database.Statement;
  private readonly insertError: Database.Statement;
  private readonly stats: SnapshotStats = { files: 0, dirs: 0, symlinks: 0, bytes: 0, errors: 0, changed: 0 };

  constructor(
    readonly path: string,
    private readonly meta: Omit<SnapshotMeta, "format" | "stats">,
  ) {
    rmSync(path, { force: true });
    this.db = new Database(path);
    // A temp file rebuilt from scratch on any failure: durability would only cost time.
    this.db.pragma("journal_mode = OFF");
    this.db.pragma("synchronous = OFF");
    this.db.exec(SNAPSHOT_SCHEMA);
    this.insertFile = this.db.prepare(
      "INSERT INTO files(path, type, mode, uid, gid, size, mtime_ns, link_target, status) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    this.insertChunk = this.db.prepare("INSERT INTO file_chunks(file_id, seq, chunk) VALUES (?, ?, ?)");
    this.insertError = this.db.prepare("INSERT INTO errors(path, message) VALUES (?, ?)");
    this.db.exec("BEGIN");
  }

  /** Adds a file, directory or symlink; `chunks` are the file's chunk hashes in order. */
  add(entry: SnapshotEntry, chunks: readonly Uint8Array[] = []): void {
    const { lastInsertRowid } = this.insertFile.run(
      entry.path, entry.type, entry.mode, entry.uid, entry.gid, entry.size, entry.mtimeNs,
      entry.linkTarget ?? null, entry.status ?? null,
    );
    chunks.forEach((c, seq) => this.insertChunk.run(lastInsertRowid, seq, c));
    if (entry.type === "file") {
      this.stats.files++;
      this.stats.bytes += entry.size;
      if (entry.status === "changed") this.stats.changed++;
    } else if (entry.type === "dir") this.stats.dirs++;
    else this.stats.symlinks++;
  }

  /** Records a path that could not be backed up (unreadable, vanished). */
  addError(path: string, message: string): void {
    this.insertError.run(path, message);
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
    this.db.exec("COMMIT");
    // One SQL join against the catalog file instead of a lookup per chunk.
    this.db.prepare("ATTACH DATABASE ? AS cat").run(catalog.path);
    this.db.exec(`
      BEGIN;
      CREATE TEMP TABLE wanted AS SELECT DISTINCT chunk FROM file_chunks;
      INSERT INTO blobs(name, size, header_length)
        SELECT DISTINCT b.name, b.size, b.header_length FROM temp.wanted w
        JOIN cat.chunks c ON c.hash = w.chunk JOIN cat.blobs b ON b.id = c.blob_id;
      INSERT INTO chunks(hash, blob_id, offset, length, raw_offset, raw_length, compression)
        SELECT c.hash, nb.id, c.offset, c.length, c.raw_offset, c.raw_length, '${COMPRESSION}' FROM temp.wanted w
        JOIN cat.chunks c ON c.hash = w.chunk JOIN cat.blobs b ON b.id = c.blob_id JOIN main.blobs nb ON nb.name = b.name;
    `);
    const missing = this.db
      .prepare("SELECT hex(w.chunk) FROM temp.wanted w LEFT JOIN main.chunks c ON c.hash = w.chunk WHERE c.hash IS NULL LIMIT 1")
      .pluck()
      .get() as string | undefined;
    if (missing !== undefined) {
      this.db.exec("ROLLBACK");
      throw new IntegrityError(`chunk ${missing.toLowerCase()}`, "is referenced but its blob is not recorded as stored");
    }
    const meta: SnapshotMeta = { ...this.meta, format: SNAPSHOT_FORMAT, stats: this.stats };
    const setMeta = this.db.prepare("INSERT INTO meta(key, value) VALUES (?, ?)");
    for (const [key, value] of Object.entries(meta)) {
      setMeta.run(key, typeof value === "string" ? value : JSON.stringify(value));
    }
    const blobs = this.db.prepare("SELECT name FROM main.blobs").pluck().all() as string[];
    this.db.exec("DROP TABLE temp.wanted; COMMIT; DETACH DATABASE cat;");
    this.db.close();
    return { stats: this.stats, blobs };
  }

  /** Abandons the snapshot and removes its temp file. */
  discard(): void {
    if (this.db.open) this.db.close();
    rmSync(this.path, { force: true });
  }
}
