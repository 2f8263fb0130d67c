import {
  chmodSync, chownSync, closeSync, constants, lchownSync, lutimesSync, mkdirSync, openSync, rmSync, symlinkSync, unlinkSync, utimesSync,
} from "node:fs";
import { dirname } from "node:path";
import type { X25519Identity } from "../crypto/keys.js";
import { LocalStateError, NoIdentityError, NotFoundError, errorMessage } from "../errors.js";
import type { DamagedFrame, WantedFrame } from "../pack/reader.js";
import type { Repository } from "../repo/repository.js";
import type { EntryRow, FileInfo, FramePlan, SnapshotReader } from "../snapshot/read.js";
import { Pace } from "../util/pace.js";
import { TaskPool } from "../util/pool.js";
import { pathSegments, SafeTree } from "./paths.js";
import { RestoreReport, TORN_FILE, type EntryProblem, type FailureCounts } from "./report.js";
import { restoredBefore } from "./resume.js";
import { finishFile, type FileMeta, type FrameWork } from "./sink.js";
import { routeOf, Writers } from "./writers.js";

// File system calls are synchronous on purpose: they hit the page cache and take microseconds,
// while each promise-based call costs the main thread about 15 µs of bookkeeping, which for
// tens of thousands of files was most of a restore's time.
//
// Restores a snapshot (or a subtree of it) in three passes: create directories (and empty
// files), then read each needed blob once and hand its chunks to writer threads, which create
// each file with its first chunk and set its size, owner, mode and times with its last; then
// symlinks, and directories' metadata last, deepest first, so writing children does not disturb
// them. Memory stays bounded: the plan streams out of SQLite one blob at a time; only the
// entries that failed are kept.
//
// An entry that fails (a chunk that does not verify, a damaged segment, a directory in the way,
// an entry the snapshot should not hold) costs that entry alone: the restore goes on, and the
// summary names every failure (RestoreReport).

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
  /** Entries restored (failed ones not counted). */
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
  /** Entries that could not be restored, by type; each is in `errors`. */
  failed: FailureCounts;
  /** Every failed entry, with why, in path order. */
  errors: EntryProblem[];
  /** Restored, but maybe not as the source had it (a file that changed while it was read). */
  warnings: EntryProblem[];
  /** Files already in the target as the snapshot has them (a re-run after an interruption): verified and left alone. */
  skipped: number;
}

/** Placements handed to one blob task at most: bounds its memory whatever a file repeats. */
const MAX_BATCH = 65536;

/** Files whose path and metadata a restore keeps at hand (a file is looked up again after a clear). */
const INFO_CACHE = 4096;

/** Below this share of a blob, chunks are fetched by ranged GETs instead of streaming it whole. */
const RANGED_BELOW = 0.25;

export class Restorer {
  readonly progress: RestoreProgress = { bytesWritten: 0, bytesTotal: 0, files: 0 };
  private readonly tree: SafeTree;
  private readonly dest: (path: string) => string;
  private readonly summary = { bytes: 0, blobs: 0, blobsStreamed: 0, blobsRanged: 0, skipped: 0 };
  /** Entries met, by type, failed or not. */
  private readonly seen = { files: 0, dirs: 0, symlinks: 0, fifos: 0, chardevs: 0, blockdevs: 0 };
  private readonly reader;
  private readonly owners: boolean;
  /** Failed entries (pass 3 leaves them as they are) and warnings. */
  private readonly report = new RestoreReport();
  /** Files of several chunks that got a write and are not finished yet: an interrupted restore removes them. */
  private readonly unfinished = new Map<number, string>();
  /** Files found already restored and verified in pass 1: passes 2 and 3 leave them alone. */
  private readonly skipped = new Set<number>();
  private lastDest: { fileId: number; abs: string } | undefined;
  private readonly infos = new Map<number, FileInfo>();
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
    for (const f of snapshot.flaws(this.o.prefix)) this.report.fail(f.id, f.type, { path: f.path, message: f.error.message });
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
        // The snapshot path is filled in by pass 3 (a thread knows only the destination).
        onFailed: (f) => this.report.fail(f.fileId, "file", { target: f.path, message: f.message }),
      });
      await this.createEntries();
      await this.writeChunks();
      await writers.drain();
    } finally {
      await writers?.close();
    }
    signal?.throwIfAborted();
    await this.finishEntries();
    const failed = this.report.counts();
    return {
      files: this.seen.files - failed.files,
      dirs: this.seen.dirs - failed.dirs,
      symlinks: this.seen.symlinks - failed.symlinks,
      ...this.summary,
      bytesFetched: this.reader.bytesFetched,
      failed,
      errors: this.report.errors(),
      warnings: this.report.warnings(),
    };
  }

  /**
   * Runs `step` for entry `e` (which notes where the entry goes in `at.abs` once known). If it
   * throws, `e` alone has failed: undefined. Otherwise `at`.
   */
  private attempt(e: EntryRow, step: (at: { abs?: string }) => void): { abs?: string } | undefined {
    const at: { abs?: string } = {};
    try {
      step(at);
      return at;
    } catch (err) {
      this.report.fail(e.id, e.type, { path: e.path, ...(at.abs === undefined ? {} : { target: at.abs }), message: errorMessage(err) });
      return undefined;
    }
  }

  /** Whether a file already at `abs` is this entry, restored by an earlier run; a read error means no. */
  private async restoredBefore(abs: string, e: EntryRow & { size: number }, pace: Pace): Promise<boolean> {
    try {
      return await restoredBefore(abs, e, this.o.snapshot.chunksOf(e.id), this.owners, pace);
    } catch (err) {
      if (this.o.signal?.aborted) throw err;
      return false;
    }
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
      this.seen[`${e.type}s`]++;
      if (e.type === "symlink" || this.report.failed(e.id)) continue;
      if (e.type === "dir") {
        this.attempt(e, (at) => this.tree.ensureDir((at.abs = this.destOf(e))));
        continue;
      }
      const abs = this.attempt(e, (at) => (at.abs = this.destOf(e)))?.abs;
      if (abs === undefined) continue;
      this.progress.bytesTotal += e.size;
      if (e.status === "changed") this.report.warn(e.path, TORN_FILE);
      // In a directory this restore made, nothing can be there yet.
      if (!this.tree.isFresh(dirname(abs))) {
        if (await this.restoredBefore(abs, e, pace)) {
          this.skipped.add(e.id);
          this.summary.skipped++;
          this.progress.bytesWritten += e.size;
          this.progress.files++;
          continue;
        }
        if (this.attempt(e, (at) => removeIfPresent((at.abs = abs), "file")) === undefined) continue;
      }
      if (e.chunks === 0) {
        await this.writers!.writeRaw({ fileId: e.id, abs, offset: 0, finish: fileMeta(e) }, EMPTY, routeOf(dirname(abs)));
      }
    }
  }

  /** Pass 2: each blob read once (whole or by ranges), its chunks written where they belong. */
  private async writeChunks(): Promise<void> {
    const pool = new TaskPool(this.o.concurrency ?? 4);
    let batch: FramePlan[] = [];
    let targets = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      const plans = batch;
      batch = [];
      targets = 0;
      await pool.run(() => this.restoreBlob(plans));
    };
    const pace = new Pace(this.o.signal, "restore-placements");
    try {
      for (const plan of this.o.snapshot.framePlans(this.o.prefix)) {
        const turn = pace.tick();
        if (turn) await turn;
        // A blob's frames go as one task, in parts when a crafted file repeats a chunk millions of times.
        if (batch.length > 0 && (batch[0]!.blob !== plan.blob || targets >= MAX_BATCH)) await flush();
        batch.push(plan);
        targets += plan.fileOf.length;
      }
      await flush();
    } catch (err) {
      // Blob tasks still running would go on placing frames they hold: after an interrupt, that
      // would create files after run() removed the unfinished ones. Nothing may write past here.
      await pool.settle();
      throw err;
    }
    await pool.drain();
  }

  private async restoreBlob(plans: FramePlan[]): Promise<void> {
    const blob = plans[0]!.blob;
    const byFrame = new Map<number, FramePlan[]>();
    for (const p of plans) {
      const list = byFrame.get(p.offset);
      if (list) list.push(p);
      else byFrame.set(p.offset, [p]);
    }
    const locs = plans.flatMap((p) => p.chunks);
    let neededBytes = 0;
    for (const list of byFrame.values()) neededBytes += list[0]!.length;
    const options = { signal: this.o.signal };
    // Frames come in offset order: those up to here are handled, the rest are not.
    const progress = { upTo: -1 };
    const rest = () => locs.filter((l) => l.offset > progress.upTo);
    this.summary.blobs++;
    try {
      if (neededBytes < RANGED_BELOW * plans[0]!.blobSize) {
        this.summary.blobsRanged++;
        await this.placeFrames(this.reader.readFramesRanged(blob, locs, options), byFrame, progress);
      } else {
        this.summary.blobsStreamed++;
        try {
          await this.placeFrames(this.reader.readFrames(blob, locs, options), byFrame, progress);
        } catch (err) {
          if (this.fatal(err) || err instanceof NotFoundError || err instanceof NoIdentityError) throw err;
          // The stream stops at the first damaged segment; what follows it is read by ranges,
          // so the damage costs only the chunks in it.
          const left = rest();
          if (left.length > 0) await this.placeFrames(this.reader.readFramesRanged(blob, left, options), byFrame, progress);
          else this.report.warn(this.o.repo.blobObject(blob), `${errorMessage(err)}; every chunk this restore needed from it verified`);
        }
      }
    } catch (err) {
      // A dead writer thread or an abort ends the restore; an unreadable blob costs only its files.
      if (this.fatal(err)) throw err;
      for (const [offset, list] of byFrame) if (offset > progress.upTo) this.failFrame(list, err);
    } finally {
      this.writers!.flush();
    }
  }

  private fatal(err: unknown): boolean {
    return this.o.signal?.aborted === true || this.writers!.failed;
  }

  /** Places the frames a blob reader yields; a damaged one fails the files that take its chunks. */
  private async placeFrames(
    frames: AsyncIterable<WantedFrame | DamagedFrame>,
    byFrame: ReadonlyMap<number, FramePlan[]>,
    progress: { upTo: number },
  ): Promise<void> {
    for await (const f of frames) {
      const plans = byFrame.get(f.offset)!;
      if ("error" in f) this.failFrame(plans, f.error);
      else await this.place(f.frame, plans);
      progress.upTo = f.offset;
    }
  }

  /** Fails every file a frame's chunks were for. */
  private failFrame(plans: readonly FramePlan[], err: unknown): void {
    for (const p of plans) {
      for (const fileId of new Set(p.fileOf)) {
        if (this.skipped.has(fileId)) continue;
        this.report.fail(fileId, "file", { path: this.fileInfo(fileId).path, message: errorMessage(err) });
      }
    }
  }

  /** A file a plan names, looked up once while its chunks come (a file of 100k chunks: once). */
  private fileInfo(id: number): FileInfo {
    let info = this.infos.get(id);
    if (!info) {
      if (this.infos.size >= INFO_CACHE) this.infos.clear();
      info = this.o.snapshot.fileInfo(id);
      this.infos.set(id, info);
    }
    return info;
  }

  /** Hands a frame to the writers, with where each of its chunks goes (FrameWork). */
  private async place(frame: Buffer, plans: readonly FramePlan[]): Promise<void> {
    const object = this.o.repo.blobObject(plans[0]!.blob);
    const files: FrameWork["files"] = [];
    // Per frame: file id → index in `files`, or -1 for a file that gets nothing (failed, skipped).
    const index = new Map<number, number>();
    const ids: string[] = [];
    const raw: number[] = [];
    const t: number[] = [];
    let route: number | undefined;
    for (const p of plans) {
      const base = ids.length;
      for (const c of p.chunks) {
        ids.push(c.id);
        raw.push(c.rawOffset, c.rawLength);
      }
      for (let k = 0; k < p.fileOf.length; k++) {
        const fileId = p.fileOf[k]!;
        let f = index.get(fileId);
        if (f === undefined) {
          f = this.target(fileId, files);
          index.set(fileId, f);
          if (f >= 0 && route === undefined) {
            // Small files by directory (creating files in one directory from two threads
            // contends for its lock), a large file's chunks by file (one thread, one descriptor).
            route = files[f]!.finish ? routeOf(dirname(files[f]!.abs)) : fileId;
          }
        }
        if (f >= 0) t.push(base + p.chunkOf[k]!, f, p.fileOffsetOf[k]!);
      }
    }
    if (t.length === 0) return;
    const work: FrameWork = { offset: plans[0]!.offset, ids, raw: Float64Array.from(raw), t: Float64Array.from(t), files };
    await this.writers!.writeFrame(frame, object, work, route!);
  }

  /** Adds file `fileId` to a frame's files and returns its index; -1 when it is to get nothing. */
  private target(fileId: number, files: FrameWork["files"]): number {
    // Refused or blocked in pass 1, failed since, or found restored before: nothing more of it.
    if (this.report.failed(fileId) || this.skipped.has(fileId)) return -1;
    const info = this.fileInfo(fileId);
    let abs: string;
    try {
      if (this.lastDest?.fileId !== fileId) this.lastDest = { fileId, abs: this.knownDestOf(info) };
      abs = this.lastDest.abs;
    } catch (err) {
      this.report.fail(fileId, "file", { path: info.path, message: errorMessage(err) });
      return -1;
    }
    const m = info.meta;
    // A file of one chunk is finished with its write; longer ones in pass 3.
    if (info.chunks === 1) return files.push({ fileId, abs, finish: { size: m.size, mode: m.mode, uid: m.uid, gid: m.gid, mtime: utimeFromMicros(m.mtimeUs) } }) - 1;
    this.unfinished.set(fileId, abs);
    return files.push({ fileId, abs }) - 1;
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
      if (this.report.failed(e.id)) {
        this.report.name(e.id, e.path);
        continue;
      }
      if (e.type === "dir") {
        dirs.push(e);
        continue;
      }
      if (e.type === "file" && (e.chunks! <= 1 || this.skipped.has(e.id))) continue;
      if (e.type === "file") {
        this.attempt(e, (at) => {
          const abs = (at.abs = this.destOf(e));
          const fd = openSync(abs, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
          try {
            finishFile(fd, fileMeta(e), owners);
          } finally {
            closeSync(fd);
          }
          this.unfinished.delete(e.id);
          this.progress.files++;
        });
      } else {
        this.attempt(e, (at) => {
          const abs = (at.abs = this.destOf(e));
          removeIfPresent(abs, "symlink");
          symlinkSync(e.linkTarget ?? "", abs);
          const time = utimeSeconds(e.mtimeNs);
          if (owners) lchownSync(abs, e.uid, e.gid);
          lutimesSync(abs, time, time);
        });
      }
    }
    // Deepest first: a directory made read-only must not stop changes below it.
    for (const e of dirs.reverse()) {
      await pace.tick();
      this.attempt(e, (at) => {
        const abs = (at.abs = this.destOf(e));
        const time = utimeSeconds(e.mtimeNs);
        if (owners) chownSync(abs, e.uid, e.gid);
        chmodSync(abs, e.mode);
        utimesSync(abs, time, time);
      });
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
