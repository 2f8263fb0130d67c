import { linkSync, mkdirSync, rmSync } from "node:fs";
import { dirname } from "node:path";
import type { X25519Identity } from "../crypto/keys.js";
import { NoIdentityError, NotFoundError, errorMessage } from "../errors.js";
import { displayPath, fsPath } from "../model/path-bytes.js";
import type { DamagedFrame, Frame, WantedFrame } from "../pack/reader.js";
import type { Repository } from "../repo/repository.js";
import type { EntryRow, FileInfo, FramePlan, HardLink, SnapshotReader } from "../snapshot/read.js";
import type { EntryType } from "../snapshot/schema.js";
import { Pace } from "../util/pace.js";
import { TaskPool } from "../util/pool.js";
import { pathSegments, SafeTree } from "./paths.js";
import { RestoreReport, TORN_FILE, type EntryProblem, type FailureCounts } from "./report.js";
import { Finisher, removeIfPresent, utimeFromMicros } from "./finish.js";
import { DeviceNotPermitted } from "./nodes.js";
import { OwnerMap } from "./owners.js";
import { restoredBefore } from "./resume.js";
import { restoredMode, type FrameWork } from "./sink.js";
import { restoreBudget } from "./budget.js";
import { routeOf, Writers } from "./writers.js";
import { XattrRefusals } from "./xattrs.js";
import { choose, everything, type Chosen } from "./chosen.js";
import type { Selection } from "./selection.js";
import { readsRanged } from "./dry-run.js";

// File system calls are synchronous on purpose: they hit the page cache and take microseconds,
// while each promise-based call costs the main thread about 15 µs of bookkeeping, which for
// tens of thousands of files was most of a restore's time.
//
// Restores a snapshot (or a subtree of it) in three passes: create directories (and empty
// files), then read each needed blob once and hand its chunks to writer threads, which create
// each file with its first chunk and set its size, owner, mode and times with its last; then
// files of several chunks or with extended attributes are finished, symlinks, FIFOs and device
// nodes made, further names of hard-linked files linked to the first, and directories'
// metadata set last, deepest first, so writing children does not disturb them. Paths are
// internal strings (model/path-bytes), handed to node:fs as fsPath() and shown as displayPath().
// Memory stays bounded: the plan streams out of SQLite one blob at a time; only the entries
// that failed (and the hard links to make) are kept.
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
  /** Restore only what these --include/--exclude patterns select (and the directories above it). */
  selection?: Selection;
  /** Where a snapshot path lands, relative to the target ("" is the target itself). */
  destination?: (path: string) => string;
  concurrency?: number;
  /** Restore owners (uid/gid), and with them setuid and setgid; only possible as root. Default: when running as root. */
  owners?: boolean;
  /** Give owners the recorded ids, not this host's ids for the recorded names (--numeric-owner). */
  numericOwner?: boolean;
  /** Create device nodes (needs root). Default: when running as root; otherwise each is skipped with a warning. */
  devices?: boolean;
  signal?: AbortSignal;
  /** The config's memory_limit: fixes writer threads and bytes in flight (restoreBudget). Default 256 MiB. */
  memoryLimit?: number;
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
  /** FIFOs and device nodes restored. */
  special: { fifos: number; chardevs: number; blockdevs: number };
  /** Device nodes not created because the restore does not run as root (each is in `warnings`). */
  devicesSkipped: number;
  /** Entries that could not be restored, by type; each is in `errors`. */
  failed: FailureCounts;
  /** Every failed entry, with why, in path order. */
  errors: EntryProblem[];
  /** Restored, but maybe not as the source had it (a file that changed while it was read). */
  warnings: EntryProblem[];
  /** Files already in the target as the snapshot has them (a re-run after an interruption): verified and left alone. */
  skipped: number;
  /** Writer threads the restore ran (0: it wrote on the main thread). */
  writers: number;
}

/** Placements handed to one blob task at most: bounds its memory whatever a file repeats. */
const MAX_BATCH = 65536;

const UNPLACED = "it references chunks the snapshot gives no blob location for (damaged or crafted snapshot)";

/** Files whose path and metadata a restore keeps at hand (a file is looked up again after a clear). */
const INFO_CACHE = 4096;


export class Restorer {
  readonly progress: RestoreProgress = { bytesWritten: 0, bytesTotal: 0, files: 0 };
  private readonly tree: SafeTree;
  private readonly dest: (path: string) => string;
  private readonly summary = { bytes: 0, blobs: 0, blobsStreamed: 0, blobsRanged: 0, skipped: 0, devicesSkipped: 0 };
  private readonly special = { fifos: 0, chardevs: 0, blockdevs: 0 };
  /** Entries met, by type, failed or not. */
  private readonly seen = { files: 0, dirs: 0, symlinks: 0, fifos: 0, chardevs: 0, blockdevs: 0 };
  private readonly reader;
  private readonly owners: boolean;
  private readonly devices: boolean;
  private readonly ids: OwnerMap;
  private readonly refusals = new XattrRefusals();
  private readonly finisher: Finisher;
  /** Further names of hard-linked files, by entry id: linked to their set's first name in pass 3. */
  private readonly links = new Map<number, HardLink>();
  /** Failed entries (pass 3 leaves them as they are) and warnings. */
  private readonly report = new RestoreReport();
  /** Files of several chunks that got a write and are not finished yet: an interrupted restore removes them. */
  private readonly unfinished = new Map<number, string>();
  /** Files found already restored and verified in pass 1: passes 2 and 3 leave them alone. */
  private readonly skipped = new Set<number>();
  private lastDest: { fileId: number; abs: string } | undefined;
  private readonly infos = new Map<number, FileInfo>();
  /** Turns for routing a large file's frames across writer threads. */
  private turn = 0;
  private writers: Writers | undefined;
  /** Whether the snapshot records extended attributes at all: if not, no file is asked for them. */
  private anyXattrs: boolean | undefined;
  /** What of the snapshot (below the prefix) this restore takes. */
  private chosen!: Chosen;

  constructor(private readonly o: RestoreOptions) {
    this.tree = new SafeTree(o.target, o.snapshot.object);
    this.reader = o.repo.blobReader(o.identities);
    this.dest = o.destination ?? ((p) => p);
    const root = process.getuid?.() === 0;
    this.owners = o.owners ?? root;
    this.devices = o.devices ?? root;
    this.ids = new OwnerMap(this.owners && !o.numericOwner);
    this.finisher = new Finisher({
      owners: this.owners,
      ids: this.ids,
      refusals: this.refusals,
      xattrsOf: (id) => o.snapshot.xattrs(id),
      root: o.target,
      object: o.snapshot.object,
    });
  }

  async run(): Promise<RestoreSummary> {
    try {
      return await this.passes();
    } catch (err) {
      // Nothing half-written stays under a file's final name; files already finished stay.
      if (this.o.signal?.aborted) for (const abs of this.unfinished.values()) rmSync(fsPath(abs), { force: true });
      throw err;
    }
  }

  private async passes(): Promise<RestoreSummary> {
    const { snapshot, signal } = this.o;
    // Worked out before anything is written: an --include that matches nothing throws here.
    this.chosen = this.o.selection ? await choose(snapshot, this.o.prefix, this.o.selection, signal) : everything(snapshot, this.o.prefix);
    for (const f of snapshot.flaws(this.o.prefix)) if (this.chosen.has(f)) this.report.fail(f.id, f.type, { path: f.path, message: f.error.message });
    if (mkdirSync(fsPath(this.o.target), { recursive: true }) !== undefined) this.tree.markFresh(this.o.target);
    for (const [id, l] of this.chosen.links()) this.links.set(id, l);
    let writers: Writers | undefined;
    try {
      writers = this.writers = new Writers({
        owners: this.owners,
        budget: restoreBudget(this.o.memoryLimit),
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
    for (const w of this.refusals.warnings()) this.report.warn(w.path, w.message);
    const failed = this.report.counts();
    return {
      writers: writers.threads,
      files: this.seen.files - failed.files,
      dirs: this.seen.dirs - failed.dirs,
      symlinks: this.seen.symlinks - failed.symlinks,
      special: this.special,
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
  private attempt(e: { id: number; type: EntryType; path: string }, step: (at: { abs?: string }) => void): { abs?: string } | undefined {
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
  private async restoredBefore(abs: string, e: EntryRow, pace: Pace): Promise<boolean> {
    try {
      return await restoredBefore(abs, { ...this.finisher.meta(e), mtimeNs: e.mtimeNs }, this.o.snapshot.chunksOf(e.id), this.owners, pace);
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
   * path is removed (a write then never meets older bytes or follows a link), and files without
   * chunks are written (they need nothing from a blob). Files with chunks are created by their
   * first write; hard links, symlinks and special files in pass 3.
   */
  private async createEntries(): Promise<void> {
    const pace = new Pace(this.o.signal, "restore-entries");
    for (const e of this.o.snapshot.entries(this.o.prefix, true)) {
      await pace.tick();
      if (!this.chosen.has(e)) continue;
      this.seen[`${e.type}s`]++;
      // Learns what each recorded owner becomes here, for the files the writer threads finish.
      this.ids.of(e);
      if ((e.type !== "file" && e.type !== "dir") || this.report.failed(e.id)) continue;
      if (e.type === "dir") {
        this.attempt(e, (at) => this.tree.ensureDir((at.abs = this.destOf(e))));
        continue;
      }
      const abs = this.attempt(e, (at) => (at.abs = this.destOf(e)))?.abs;
      if (abs === undefined) continue;
      if (this.links.has(e.id)) {
        // A further name of a hard-linked file: no content of its own, linked in pass 3.
        if (!this.tree.isFresh(dirname(abs))) this.attempt(e, () => removeIfPresent(abs, "file"));
        continue;
      }
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
      // A file with extended attributes is finished in pass 3 (they go before its mode).
      if (e.chunks === 0 && !this.hasXattrs(e.id)) {
        await this.writers!.writeRaw({ fileId: e.id, abs, offset: 0, finish: this.finisher.meta(e) }, EMPTY, routeOf(dirname(abs)));
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
    // A part holds up to 65,536 targets: a turn every 8 parts keeps an interrupt under a second.
    const pace = new Pace(this.o.signal, "restore-placements", 8);
    try {
      for (const all of this.o.snapshot.framePlans(this.o.prefix)) {
        const turn = pace.tick();
        if (turn) await turn;
        // Frames only files left out of a selective restore need are not read at all.
        const plan = this.chosen.plan(all);
        if (!plan) continue;
        if (plan.unplaced) {
          for (const fileId of new Set(plan.fileOf)) {
            if (this.skipped.has(fileId)) continue;
            this.report.fail(fileId, "file", { path: this.fileInfo(fileId).path, message: UNPLACED });
          }
          continue;
        }
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
    // Plans come in offset order; a frame in several parts is read once.
    const frames: Frame[] = [];
    for (const p of plans) if (frames[frames.length - 1]?.offset !== p.offset) frames.push({ offset: p.offset, length: p.length, chunks: [] });
    let neededBytes = 0;
    for (const f of frames) neededBytes += f.length;
    const options = { signal: this.o.signal };
    // Frames come in offset order: those up to here are handled, the rest are not.
    const progress = { upTo: -1 };
    const rest = () => frames.filter((f) => f.offset > progress.upTo);
    this.summary.blobs++;
    try {
      if (readsRanged(neededBytes, plans[0]!.blobSize)) {
        this.summary.blobsRanged++;
        await this.placeFrames(this.reader.rangedFrames(blob, frames, options), byFrame, progress);
      } else {
        this.summary.blobsStreamed++;
        const err = await this.streamBlob(blob, frames, byFrame, progress);
        if (err !== undefined) {
          if (this.fatal(err) || err instanceof NotFoundError || err instanceof NoIdentityError) throw err;
          // The stream stops at the first damaged segment; what follows it is read by ranges,
          // so the damage costs only the chunks in it.
          const left = rest();
          if (left.length > 0) await this.placeFrames(this.reader.rangedFrames(blob, left, options), byFrame, progress);
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

  /**
   * Reads a whole blob and hands its bytes to a writer thread, which decrypts it and writes the
   * frames' chunks; what stopped it (a read error here, damage found there), if anything.
   */
  private async streamBlob(blob: string, frames: readonly Frame[], byFrame: ReadonlyMap<number, FramePlan[]>, progress: { upTo: number }): Promise<unknown> {
    let route: number | undefined;
    const wanted = frames.map((f) => {
      const w = this.workOf(byFrame.get(f.offset)!);
      route ??= w?.route;
      return { offset: f.offset, length: f.length, work: w?.work ?? null };
    });
    const stream = this.writers!.streamBlob({ blob, object: this.o.repo.blobObject(blob), frames: wanted }, route ?? this.turn++);
    let failure: { err: unknown } | undefined;
    try {
      await this.reader.forwardBlob(blob, stream, { signal: this.o.signal });
    } catch (err) {
      failure = { err };
    }
    const end = await stream.end(failure !== undefined);
    progress.upTo = end.upTo;
    // Damage the thread met came first: reading went on past it only because the thread is behind.
    if (end.error !== undefined) return new Error(end.error);
    return failure?.err;
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
    const w = this.workOf(plans);
    if (w) await this.writers!.writeFrame(frame, this.o.repo.blobObject(plans[0]!.blob), w.work, w.route);
  }

  /** Where each chunk of a frame goes, and the thread route for it; undefined when nothing is to be written. */
  private workOf(plans: readonly FramePlan[]): { work: FrameWork; route: number } | undefined {
    const files: FrameWork["files"] = [];
    // Per frame: file id → index in `files`, or -1 for a file that gets nothing (failed, skipped).
    const index = new Map<number, number>();
    const ids: string[] = [];
    const raw: number[] = [];
    const t: number[] = [];
    let route: number | undefined;
    for (const p of plans) {
      const base = ids.length;
      for (let i = 0; i < p.ids.length; i++) {
        ids.push(p.ids[i]!);
        raw.push(p.raw[2 * i]!, p.raw[2 * i + 1]!);
      }
      for (let k = 0; k < p.fileOf.length; k++) {
        const fileId = p.fileOf[k]!;
        let f = index.get(fileId);
        if (f === undefined) {
          f = this.target(fileId, files);
          index.set(fileId, f);
          if (f >= 0 && route === undefined) {
            // Small files by directory (creating files in one directory from two threads
            // contends for its lock); a large file's frames by turns, so every writer thread
            // decompresses and checks its chunks (each thread writes through a descriptor of its own).
            route = files[f]!.finish ? routeOf(dirname(files[f]!.abs)) : this.turn++;
          }
        }
        if (f >= 0) t.push(base + p.chunkOf[k]!, f, p.fileOffsetOf[k]!);
      }
    }
    if (t.length === 0) return undefined;
    return { work: { offset: plans[0]!.offset, ids, raw: Float64Array.from(raw), t: Float64Array.from(t), files }, route: route! };
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
    // A file of one chunk is finished with its write; longer ones, and those with extended
    // attributes (set before the mode), in pass 3.
    if (info.chunks === 1 && !this.hasXattrs(fileId)) {
      const finish = { size: m.size, mode: restoredMode(m.mode, this.owners), uid: this.ids.uid(m.uid), gid: this.ids.gid(m.gid), mtime: utimeFromMicros(m.mtimeUs) };
      return files.push({ fileId, abs, finish }) - 1;
    }
    this.unfinished.set(fileId, abs);
    return files.push({ fileId, abs }) - 1;
  }

  private hasXattrs(id: number): boolean {
    this.anyXattrs ??= this.o.snapshot.anyXattrs();
    return this.anyXattrs && this.o.snapshot.xattrs(id).length > 0;
  }

  /**
   * Pass 3: files of several chunks (all written now) or with extended attributes get their
   * exact size, owner, attributes, mode and times. Files a write failed for are left as they
   * are (mode 0600, the restore's time, maybe short), so nothing mistakes them for intact
   * copies. Then symlinks (nothing is written through them after this), FIFOs and device
   * nodes; hard links to finished files; directories last, deepest first.
   */
  private async finishEntries(): Promise<void> {
    const dirs: EntryRow[] = [];
    const pace = new Pace(this.o.signal, "restore-finish");
    for (const e of this.o.snapshot.entries(this.o.prefix, true)) {
      await pace.tick();
      if (!this.chosen.has(e)) continue;
      if (this.report.failed(e.id)) {
        this.report.name(e.id, e.path);
        continue;
      }
      if (e.type === "dir") {
        dirs.push(e);
        continue;
      }
      if (e.type === "file") {
        if (this.skipped.has(e.id) || this.links.has(e.id)) continue;
        // One chunk or none: finished with its write, unless it has attributes to set first.
        if (e.chunks! <= 1 && !this.hasXattrs(e.id)) continue;
        this.attempt(e, (at) => {
          this.finisher.file((at.abs = this.destOf(e)), e);
          this.unfinished.delete(e.id);
          this.progress.files++;
        });
      } else if (e.type === "symlink") {
        this.attempt(e, (at) => this.finisher.symlink((at.abs = this.destOf(e)), e));
      } else {
        this.makeNode({ ...e, type: e.type });
      }
    }
    for (const l of this.links.values()) {
      await pace.tick();
      this.link(l);
    }
    // Deepest first: a directory made read-only must not stop changes below it.
    for (const e of dirs.reverse()) {
      await pace.tick();
      this.attempt(e, (at) => this.finisher.dir((at.abs = this.destOf(e)), e));
    }
  }

  /** A FIFO or device node; a device node without the privilege to make one is skipped, with a warning. */
  private makeNode(e: EntryRow & { type: "fifo" | "chardev" | "blockdev" }): void {
    let denied = e.type !== "fifo" && !this.devices;
    const made =
      !denied &&
      this.attempt(e, (at) => {
        try {
          this.finisher.node((at.abs = this.destOf(e)), e);
        } catch (err) {
          if (!(err instanceof DeviceNotPermitted)) throw err;
          denied = true;
        }
      }) !== undefined;
    if (denied) {
      this.summary.devicesSkipped++;
      this.report.warn(e.path, `a ${e.type === "chardev" ? "character" : "block"} device node not restored: creating one needs root (CAP_MKNOD)`);
    } else if (made) this.special[`${e.type}s`]++;
  }

  /** Makes a further name of a hard-linked file a link to the set's first name (finished by now). */
  private link(l: HardLink): void {
    if (this.report.failed(l.id)) return;
    const e = { id: l.id, type: "file" as const, path: l.path };
    if (this.report.failed(l.leaderId)) {
      this.report.fail(l.id, "file", { path: l.path, message: `not linked: ${displayPath(l.leaderPath)}, the name of its hard-link set that holds the content, was not restored` });
      return;
    }
    this.attempt(e, (at) => {
      const leader = this.destOf({ path: l.leaderPath });
      const abs = (at.abs = this.destOf(e));
      removeIfPresent(abs, "file");
      linkSync(fsPath(leader), fsPath(abs));
      this.progress.files++;
    });
  }
}

const EMPTY = new Uint8Array(0);
