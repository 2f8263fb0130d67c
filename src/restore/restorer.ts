import {
  chmodSync, chownSync, closeSync, constants, lchownSync, lutimesSync, mkdirSync, openSync, rmSync, symlinkSync, unlinkSync, utimesSync,
} from "node:fs";
import { dirname } from "node:path";
import type { X25519Identity } from "../crypto/keys.js";
import { IntegrityError, LocalStateError, errorMessage } from "../errors.js";
import type { ChunkLocation } from "../model/chunk.js";
import type { Repository } from "../repo/repository.js";
import type { EntryRow, Placement, SnapshotReader } from "../snapshot/read.js";
import { Pace } from "../util/pace.js";
import { TaskPool } from "../util/pool.js";
import { pathSegments, SafeTree } from "./paths.js";
import { restoredBefore } from "./resume.js";
import { finishFile, type FileMeta, type WriteOp } from "./sink.js";
import { routeOf, Writers } from "./writers.js";

// File system calls are synchronous on purpose: they hit the page cache and take microseconds,
// while each promise-based call costs the main thread about 15 µs of bookkeeping, which for
// tens of thousands of files was most of a restore's time.
//
// Restores a snapshot (or a subtree of it) in three passes: create directories (and empty
// files), then read each needed blob once and hand its chunks to writer threads, which create
// each file with its first chunk and set its size, owner, mode and times with its last; then
// symlinks, and directories' metadata last, deepest first, so writing children does not disturb
// them. Memory stays bounded: the plan streams out of SQLite one blob at a time; only the ids
// of files that failed are kept.

export interface RestoreOptions {
  repo: Repository;
  identities: readonly X25519Identity[];
  snapshot: SnapshotReader;
  target: string;
  /** Restore only this snapshot path and what is below it. */
  prefix?: string;
  /** Where a snapshot path lands, relative to the target ("" is the target itself). */
  destination?: (path: string) => string;
  concurrency?: number;
  /** Restore owners (uid/gid); only possible as root. Default: when running as root. */
  owners?: boolean;
  signal?: AbortSignal;
}

export interface RestoreProgress {
  bytesWritten: number;
  bytesTotal: number;
  files: number;
}

export interface RestoreSummary {
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  blobs: number;
  /** Blobs read in full vs. read by ranged requests. */
  blobsStreamed: number;
  blobsRanged: number;
  /** Ciphertext bytes read from the repository. */
  bytesFetched: number;
  /** Files already in the target as the snapshot has them (a re-run after an interruption): verified and left alone. */
  skipped: number;
  errors: { path: string; message: string }[];
}

/** Placements handed to one blob task at most: bounds its memory whatever a file repeats. */
const MAX_BATCH = 65536;

/** Below this share of a blob, chunks are fetched by ranged GETs instead of streaming it whole. */
const RANGED_BELOW = 0.25;

export class Restorer {
  readonly progress: RestoreProgress = { bytesWritten: 0, bytesTotal: 0, files: 0 };
  private readonly tree: SafeTree;
  private readonly dest: (path: string) => string;
  private readonly summary: RestoreSummary = { files: 0, dirs: 0, symlinks: 0, bytes: 0, blobs: 0, blobsStreamed: 0, blobsRanged: 0, bytesFetched: 0, skipped: 0, errors: [] };
  private readonly reader;
  private readonly owners: boolean;
  /** Files a write failed for (or whose blob could not be read): pass 3 settles them. */
  private readonly incomplete = new Set<number>();
  /** Files of several chunks that got a write and are not finished yet: an interrupted restore removes them. */
  private readonly unfinished = new Map<number, string>();
  /** Files found already restored and verified in pass 1: passes 2 and 3 leave them alone. */
  private readonly skipped = new Set<number>();
  private lastDest: { fileId: number; abs: string } | undefined;
  private writers: Writers | undefined;

  constructor(private readonly o: RestoreOptions) {
    this.tree = new SafeTree(o.target, o.snapshot.object);
    this.reader = o.repo.blobReader(o.identities);
    this.dest = o.destination ?? ((p) => p);
    this.owners = o.owners ?? process.getuid?.() === 0;
  }

  async run(): Promise<RestoreSummary> {
    try {
      return await this.passes();
    } catch (err) {
      // Nothing half-written stays under a file's final name; files already finished stay.
      if (this.o.signal?.aborted) for (const abs of this.unfinished.values()) rmSync(abs, { force: true });
      throw err;
    }
  }

  private async passes(): Promise<RestoreSummary> {
    const { snapshot, signal } = this.o;
    const unplaced = snapshot.unplacedChunks();
    if (unplaced > 0) throw new IntegrityError(snapshot.object, `${unplaced} chunk references have no blob location`);
    if (mkdirSync(this.o.target, { recursive: true }) !== undefined) this.tree.markFresh(this.o.target);
    let writers: Writers | undefined;
    try {
      writers = this.writers = new Writers({
        owners: this.owners,
        onApplied: (bytes, files) => {
          this.progress.bytesWritten += bytes;
          this.progress.files += files;
          this.summary.bytes += bytes;
        },
        onFailed: (f) => {
          // One message per file, not one per chunk that could not follow the first failure.
          if (this.incomplete.has(f.fileId)) return;
          this.incomplete.add(f.fileId);
          this.summary.errors.push({ path: f.path, message: f.message });
        },
      });
      await this.createEntries();
      await this.writeChunks();
      await writers.drain();
    } finally {
      await writers?.close();
    }
    signal?.throwIfAborted();
    await this.finishEntries();
    this.summary.bytesFetched = this.reader.bytesFetched;
    return this.summary;
  }

  private destOf(e: { path: string }): string {
    pathSegments(e.path, this.o.snapshot.object);
    return this.tree.prepare(this.dest(e.path));
  }

  /** destOf for a file pass 1 has seen: its parents are known to be safe. */
  private knownDestOf(e: { path: string }): string {
    pathSegments(e.path, this.o.snapshot.object);
    return this.tree.resolve(this.dest(e.path));
  }

  /**
   * Pass 1: directories exist, every path is checked, whatever was in the target at a file's
   * path is removed (a write then never meets older bytes or follows a link), and files without chunks are written (they need
   * nothing from a blob). Files with chunks are created by their first write.
   */
  private async createEntries(): Promise<void> {
    const pace = new Pace(this.o.signal, "restore-entries");
    for (const e of this.o.snapshot.entries(this.o.prefix, true)) {
      await pace.tick();
      if (e.type === "symlink") continue;
      if (e.type === "dir") {
        this.summary.dirs++;
        this.tree.ensureDir(this.destOf(e));
        continue;
      }
      this.progress.bytesTotal += e.size;
      this.summary.files++;
      const abs = this.destOf(e);
      // In a directory this restore made, nothing can be there yet.
      if (!this.tree.isFresh(dirname(abs))) {
        if (await restoredBefore(abs, e, this.o.snapshot.chunksOf(e.id), this.owners, pace)) {
          this.skipped.add(e.id);
          this.summary.skipped++;
          this.progress.bytesWritten += e.size;
          this.progress.files++;
          continue;
        }
        removeIfPresent(abs, "file");
      }
      if (e.chunks === 0) {
        await this.writers!.writeRaw({ fileId: e.id, abs, offset: 0, finish: fileMeta(e) }, EMPTY, routeOf(dirname(abs)));
      }
    }
  }

  /** Pass 2: each blob read once (whole or by ranges), its chunks written where they belong. */
  private async writeChunks(): Promise<void> {
    const pool = new TaskPool(this.o.concurrency ?? 4);
    let batch: Placement[] = [];
    const flush = async () => {
      if (batch.length === 0) return;
      const rows = batch;
      batch = [];
      await pool.run(() => this.restoreBlob(rows));
    };
    const pace = new Pace(this.o.signal, "restore-placements");
    for (const p of this.o.snapshot.placements(this.o.prefix)) {
      await pace.tick();
      if (this.skipped.has(p.fileId)) continue;
      // A blob's placements go as one task, in parts when a crafted file repeats a chunk millions of times.
      if (batch.length > 0 && (batch[0]!.loc.blob !== p.loc.blob || batch.length >= MAX_BATCH)) await flush();
      batch.push(p);
    }
    await flush();
    await pool.drain();
  }

  private async restoreBlob(rows: Placement[]): Promise<void> {
    const blob = rows[0]!.loc.blob;
    const byChunk = new Map<string, { loc: ChunkLocation; targets: Placement[] }>();
    for (const r of rows) {
      const entry = byChunk.get(r.loc.id) ?? { loc: r.loc, targets: [] };
      entry.targets.push(r);
      byChunk.set(r.loc.id, entry);
    }
    const needed = [...byChunk.values()];
    const neededBytes = needed.reduce((n, c) => n + c.loc.length, 0);
    const reader = this.reader;
    const options = { signal: this.o.signal };
    this.summary.blobs++;
    try {
      if (neededBytes < RANGED_BELOW * rows[0]!.blobSize) {
        this.summary.blobsRanged++;
        for (const c of needed) await this.place(await reader.readFrame(c.loc, options), [c]);
      } else {
        this.summary.blobsStreamed++;
        for await (const f of reader.readFrames(blob, needed.map((c) => c.loc), options)) {
          await this.place(f.frame, f.chunks.map((loc) => byChunk.get(loc.id)!));
        }
      }
    } catch (err) {
      // A dead writer thread or an abort ends the restore; a bad blob costs only its files.
      if (this.o.signal?.aborted || this.writers!.failed) throw err;
      for (const r of rows) this.incomplete.add(r.fileId);
      const files = [...new Set(rows.map((r) => r.path))];
      const shown = files.slice(0, 5).join(", ") + (files.length > 5 ? ` and ${files.length - 5} more` : "");
      this.summary.errors.push({ path: shown, message: errorMessage(err) });
    } finally {
      this.writers!.flush();
    }
  }

  /** Hands a frame to the writers, with where each of its chunks goes. */
  private async place(frame: Buffer, chunks: readonly { loc: ChunkLocation; targets: readonly Placement[] }[]): Promise<void> {
    const object = this.o.repo.blobObject(chunks[0]!.loc.blob);
    const ops = chunks.map((c) => ({
      loc: c.loc,
      targets: c.targets.map((t): WriteOp => {
        const f = t.file;
        // A file of one chunk is finished with its write; longer ones in pass 3.
        const finish = t.fileChunks === 1 ? { size: f.size, mode: f.mode, uid: f.uid, gid: f.gid, mtime: utimeFromMicros(f.mtimeUs) } : undefined;
        // A file of many chunks asks for its destination once, not once per chunk.
        if (this.lastDest?.fileId !== t.fileId) this.lastDest = { fileId: t.fileId, abs: this.knownDestOf(t) };
        const abs = this.lastDest.abs;
        if (!finish) this.unfinished.set(t.fileId, abs);
        return { fileId: t.fileId, abs, offset: t.fileOffset, finish };
      }),
    }));
    // Small files by directory (creating files in one directory from two threads contends for
    // its lock), a large file's chunks by file (one thread, one descriptor, no contention).
    const first = chunks[0]!.targets[0]!;
    const route = first.fileChunks > 1 ? first.fileId : routeOf(dirname(ops[0]!.targets[0]!.abs));
    await this.writers!.writeFrame(frame, object, ops, route);
  }

  /**
   * Pass 3: files of several chunks (all written now) get their exact size, owner, mode and
   * times. Files a write failed for are left as they are (mode 0600, the restore's time, maybe
   * short), so nothing mistakes them for intact copies. Then symlinks (nothing is written
   * through them after this); directories last, deepest first.
   */
  private async finishEntries(): Promise<void> {
    const owners = this.owners;
    const dirs: EntryRow[] = [];
    const pace = new Pace(this.o.signal, "restore-finish");
    for (const e of this.o.snapshot.entries(this.o.prefix, true)) {
      await pace.tick();
      if (e.type === "dir") {
        dirs.push(e);
        continue;
      }
      if (e.type === "file" && (e.chunks! <= 1 || this.incomplete.has(e.id) || this.skipped.has(e.id))) continue;
      const abs = this.destOf(e);
      if (e.type === "file") {
        try {
          const fd = openSync(abs, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
          try {
            finishFile(fd, fileMeta(e), owners);
          } finally {
            closeSync(fd);
          }
          this.unfinished.delete(e.id);
          this.progress.files++;
        } catch (err) {
          this.summary.errors.push({ path: abs, message: errorMessage(err) });
        }
      } else {
        removeIfPresent(abs, "symlink");
        symlinkSync(e.linkTarget ?? "", abs);
        const time = utimeSeconds(e.mtimeNs);
        if (owners) lchownSync(abs, e.uid, e.gid);
        lutimesSync(abs, time, time);
        this.summary.symlinks++;
      }
    }
    // Deepest first: a directory made read-only must not stop changes below it.
    for (const e of dirs.reverse()) {
      await pace.tick();
      const abs = this.destOf(e);
      const time = utimeSeconds(e.mtimeNs);
      if (owners) chownSync(abs, e.uid, e.gid);
      chmodSync(abs, e.mode);
      utimesSync(abs, time, time);
    }
  }
}

const EMPTY = new Uint8Array(0);

/**
 * Removes what is at `abs` (a file of an earlier restore, a symlink, a hard link to a file
 * elsewhere, a FIFO), so what the restore makes there is new: it never writes into, through or
 * beside something it did not make. A directory in the way is an error.
 */
function removeIfPresent(abs: string, what: "file" | "symlink"): void {
  try {
    unlinkSync(abs);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return;
    if (code === "EISDIR") throw new LocalStateError(abs, `cannot restore this ${what}: a directory is in the way`, { cause: err });
    throw err;
  }
}

/** What a file entry gets once its content is written. */
function fileMeta(e: EntryRow): FileMeta {
  return { size: e.size, mode: e.mode, uid: e.uid, gid: e.gid, mtime: utimeSeconds(e.mtimeNs) };
}

/**
 * Node's utimes takes seconds as a double, which libuv truncates to nanoseconds; at today's
 * epoch a double resolves about 0.24 µs. Aiming half a microsecond in makes the truncation land
 * on the right microsecond, so restored mtimes are exact to the microsecond.
 */
export function utimeSeconds(mtimeNs: bigint): number {
  return utimeFromMicros(Number(mtimeNs / 1000n));
}

/** The same from whole microseconds (which SQLite can hand out as a safe JavaScript number). */
export function utimeFromMicros(us: number): number {
  return us / 1e6 + 5e-7;
}
