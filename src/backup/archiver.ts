import { hostname } from "node:os";
import type { Catalog, FileStamp } from "../catalog/db.js";
import { recipientSetId } from "../catalog/recipients.js";
import { chunkerParams, type ChunkerParams } from "../chunk/fastcdc.js";
import type { X25519Recipient } from "../crypto/keys.js";
import type { Repository } from "../repo/repository.js";
import { SnapshotBuilder } from "../snapshot/build.js";
import type { SnapshotEntry, Xattr } from "../snapshot/schema.js";
import { newSnapshotId } from "../model/snapshot-id.js";
import { displayPath } from "../model/path-bytes.js";
import { availableParallelism } from "node:os";
import { threadsFromEnv } from "../util/worker.js";
import { VERSION } from "../version.js";
import { CatalogCommits, type FileDeps } from "./catalog-commits.js";
import type { Excluder } from "./exclude.js";
import { DEFAULT_MEMORY_LIMIT, planMemory, type MemoryPlan } from "./memory-plan.js";
import { isFileError } from "./pack-stage.js";
import { PackPipeline, type LaneResult } from "./pipeline.js";
import { chunkHashAt } from "./wire.js";
import { checkSourceDirs, snapshotPath, walk, type DirtySet, type WalkEntry } from "./walker.js";
import { loadOwnerNames, type OwnerNames } from "./owners.js";
import { readXattrs } from "./xattrs.js";
import { sparseRegions } from "./sparse.js";
import { crashPoint } from "../util/test-points.js";
import { errorMessage } from "../errors.js";

// One backup run: walk, skip what the catalog says is unchanged, hand the rest to the pack
// workers (pipeline.ts, pack-stage.ts: read, chunk, deduplicate, compress, encrypt, seal),
// store the blobs they seal, then upload the snapshot database. The main thread only walks,
// coordinates and writes SQLite. What the catalog learns and when is catalog-commits.ts; the
// memory budget that fixes the number of workers is memory-plan.ts.
//
// What is recorded of each entry (README "What a backup records"): hard-link sets (the first
// name of an inode carries the content, later names link to it and are not read), holes
// (sparse.ts), extended attributes and ACLs (xattrs.ts), owner names (owners.ts), FIFOs and
// device nodes; sockets are counted and skipped. A file whose content stamp (size, mtime,
// inode, device) is unchanged but whose ctime moved had only its metadata changed: its chunks
// are reused and its attributes read again.

export interface BackupOptions {
  repo: Repository;
  catalog: Catalog;
  recipients: readonly X25519Recipient[];
  sourceDirs: readonly string[];
  exclude: Excluder;
  chunkSize: number;
  blobSizeLimit: number;
  /** Directory for ciphertext spool files and the snapshot database under construction. */
  workDir: string;
  host?: string;
  now?: () => Date;
  signal?: AbortSignal;
  /** Pack worker threads asked for (0: on the main thread); default VAULTIK_WORKERS, else one per core. The memory limit caps it. */
  workers?: number;
  /** The memory budget (config memory_limit); default 256 MiB. */
  memoryLimit?: number;
  /** Paths changed since the last run (daemon): walk incrementally, trusting the catalog elsewhere. */
  dirty?: DirtySet;
  /** Called with every blob the snapshot references, just before it is committed; may throw. */
  beforeCommit?: (blobs: readonly string[]) => Promise<void>;
  /** Byte streams stored as files in the snapshot (database dumps); see backup/commands.ts. */
  streams?: readonly StreamSource[];
}

export interface StreamSource {
  /** Snapshot path, relative, e.g. `commands/db.dump`. */
  path: string;
  open(signal: AbortSignal | undefined): AsyncIterable<Uint8Array>;
  /** Called after the stream ended; throws to fail the run (e.g. the command exited non-zero). */
  finished(): Promise<void>;
  /**
   * Present for a stream not produced every run (a database with its own schedule): whether it
   * is due at `now`, given when it was last produced. Not due, the last output (known to the
   * local index) goes into the snapshot again without opening the stream.
   */
  due?(last: Date, now: Date): boolean;
}

export interface BackupProgress {
  filesDone: number;
  bytesDone: number;
  currentPath: string;
}

export interface BackupSummary {
  snapshotId: string;
  filesNew: number;
  filesChanged: number;
  filesUnchanged: number;
  dirs: number;
  symlinks: number;
  /** FIFOs and device nodes recorded. */
  special: number;
  /** Further names of a file already recorded in this snapshot (hard links): not read again. */
  hardLinks: number;
  /** Sockets met and not recorded (nothing can restore one). */
  sockets: number;
  /** Bytes of file content read from disk (unchanged files and holes are not read). */
  bytesRead: number;
  /** Bytes of chunks not already in the repository, before compression. */
  bytesNew: number;
  /** Ciphertext bytes uploaded: new blobs plus the snapshot database. */
  bytesUploaded: number;
  blobsUploaded: number;
  snapshotSize: number;
  /** Paths that could not be read (absolute, as shown to users: model/path-bytes displayPath). */
  errors: { path: string; message: string }[];
  /** Absolute paths of files that changed while being read. */
  changedDuringBackup: string[];
  durationMs: number;
  /** Pack worker threads the memory limit allowed (memory-plan.ts); 0: on the main thread. */
  workers: number;
  /** Workers asked for (VAULTIK_WORKERS, else the core count) when memory_limit allowed fewer. */
  workersAsked?: number;
}

const MAX_READ_ATTEMPTS = 2;

/** The first name of a hard-link set that was backed up: what its later names link to. */
interface LinkLeader {
  id: number;
  size: number;
  xattrs: Xattr[];
}

export class Archiver {
  readonly progress: BackupProgress = { filesDone: 0, bytesDone: 0, currentPath: "" };
  private readonly params: ChunkerParams;
  private readonly commits: CatalogCommits;
  /** What the memory limit allows (workers, buffers). */
  readonly plan: MemoryPlan;
  /** Created by run(), so an archiver that never runs starts no threads. */
  private pipeline!: PackPipeline;
  /** Files being read, and the first failure among them. */
  private readonly reading = new Set<Promise<unknown>>();
  private readFailure: { error: unknown } | undefined;
  private readonly summary: Omit<BackupSummary, "snapshotId" | "durationMs" | "snapshotSize" | "bytesUploaded" | "blobsUploaded" | "workers" | "workersAsked">;
  private readonly builder: SnapshotBuilder;
  private readonly snapshotId: string;
  private readonly started: Date;
  /** Files with more than one name, by `${dev}:${inode}`: each name waits for the one before it. */
  private readonly links = new Map<string, Promise<LinkLeader | undefined>>();
  private owners: OwnerNames = { user: () => undefined, group: () => undefined };

  constructor(private readonly o: BackupOptions) {
    // Here, not in run(): the caller builds the archiver before it writes anything to the store.
    checkSourceDirs(o.sourceDirs);
    this.params = chunkerParams(o.chunkSize);
    this.started = (o.now ?? (() => new Date()))();
    this.snapshotId = newSnapshotId(this.started, o.host ?? hostname());
    this.commits = new CatalogCommits(o.catalog);
    this.plan = planMemory({
      memoryLimit: o.memoryLimit ?? DEFAULT_MEMORY_LIMIT,
      params: this.params,
      blobSizeLimit: o.blobSizeLimit,
      cores: availableParallelism(),
      requested: o.workers ?? threadsFromEnv("VAULTIK_WORKERS", availableParallelism()),
    });
    this.summary = {
      filesNew: 0, filesChanged: 0, filesUnchanged: 0, dirs: 0, symlinks: 0, special: 0, hardLinks: 0, sockets: 0,
      bytesRead: 0, bytesNew: 0, errors: [], changedDuringBackup: [],
    };
    this.builder = new SnapshotBuilder(`${o.workDir}/snapshot-${this.snapshotId}.sqlite`, {
      id: this.snapshotId,
      host: o.host ?? hostname(),
      time: this.started.toISOString(),
      sourceDirs: [...o.sourceDirs],
      vaultikVersion: VERSION,
      chunker: "fastcdc-2016",
      chunkSize: o.chunkSize,
      chunkHash: "sha256",
      blobHash: "sha256",
      compression: "zstd",
    });
  }

  get id(): string {
    return this.snapshotId;
  }

  async run(): Promise<BackupSummary> {
    const { signal } = this.o;
    // Before any lookup, and before the chunk workers open their own view of the catalog.
    this.o.catalog.useRecipients(recipientSetId(this.o.recipients));
    this.owners = loadOwnerNames();
    this.pipeline = new PackPipeline({
      repo: this.o.repo,
      catalog: this.o.catalog,
      commits: this.commits,
      params: this.params,
      recipients: this.o.recipients,
      blobSizeLimit: this.o.blobSizeLimit,
      workDir: this.o.workDir,
      plan: this.plan,
      signal,
      onProgress: (bytes) => (this.progress.bytesDone += bytes),
    });
    try {
      const walkOptions = { signal, dirty: this.o.dirty, catalog: this.o.catalog };
      for await (const ev of walk(this.o.sourceDirs, this.o.exclude, walkOptions)) {
        signal?.throwIfAborted();
        this.throwIfFailed();
        if (ev.kind === "error") this.error(ev.abs, ev.error);
        else if (ev.kind === "gone") this.o.catalog.dropSubtree(ev.abs);
        else if (ev.kind === "socket") {
          this.summary.sockets++;
          this.builder.addSocket();
        }
        else if (ev.kind === "entry") {
          const { entry } = ev;
          if (entry.type === "file") {
            // Paced by the files the workers have not answered yet (the memory plan's bound).
            await this.pipeline.room();
            const done = this.file(entry);
            if (done) this.track(done);
          } else this.other(entry);
        }
      }
      for (const s of this.o.streams ?? []) this.track(this.stream(s));
      while (this.reading.size > 0) await Promise.all(this.reading);
      this.throwIfFailed();
      await this.pipeline.finish();
      this.commits.flush();
      const { blobs } = this.builder.finish(this.o.catalog);
      await this.o.beforeCommit?.(blobs);
      crashPoint("before-snapshot-put");
      const snapshotSize = await this.o.repo.putSnapshot(this.snapshotId, this.builder.path, this.o.recipients, { signal });
      crashPoint("after-snapshot-put");
      // Only a full walk saw everything; an incremental one leaves unvisited rows as they are.
      if (!this.o.dirty) this.o.catalog.dropEntriesMissingFrom(this.builder, this.o.sourceDirs);
      this.o.catalog.setState("last_snapshot", this.snapshotId);
      return {
        snapshotId: this.snapshotId,
        ...this.summary,
        bytesUploaded: this.pipeline.bytesUploaded + snapshotSize,
        blobsUploaded: this.pipeline.blobsUploaded,
        snapshotSize,
        durationMs: Date.now() - this.started.getTime(),
        workers: this.plan.workers,
        ...(this.plan.cappedFrom === undefined ? {} : { workersAsked: this.plan.cappedFrom }),
      };
    } finally {
      // Uploads still running would record blobs into a catalog the caller is about to close.
      await this.pipeline.close();
      await Promise.allSettled([...this.reading]);
      this.builder.discard();
    }
  }

  /** Keeps a file being read in view: the run waits for it and fails with its first error. */
  private track(p: Promise<unknown>): void {
    const tracked = p
      .catch((error: unknown) => {
        this.readFailure ??= { error };
      })
      .finally(() => this.reading.delete(tracked));
    this.reading.add(tracked);
  }

  private throwIfFailed(): void {
    if (this.readFailure) throw this.readFailure.error;
    this.pipeline.throwIfFailed();
  }

  /** A path that could not be read: absolute in messages, as every other path in the snapshot. */
  private error(abs: string, err: unknown): void {
    const message = errorMessage(err);
    this.summary.errors.push({ path: displayPath(abs), message });
    this.builder.addError(snapshotPath(abs), message);
  }

  private other(entry: WalkEntry): void {
    if (entry.type === "symlink") this.summary.symlinks++;
    else if (entry.type === "dir") this.summary.dirs++;
    else this.summary.special++;
    // Directories only: see xattrs.ts for why not symlinks, FIFOs and devices.
    const xattrs = entry.type === "dir" ? this.xattrsOf(entry) : [];
    this.builder.add(this.base(entry, xattrs));
    this.remember(entry, xattrs);
  }

  /** Attributes as recorded while the ctime has not moved (any xattr or ACL change moves it), else read. */
  private xattrsOf(entry: WalkEntry): Xattr[] {
    return this.o.catalog.knownXattrs(entry.abs, entry.type, entry.stamp.ctimeNs) ?? readXattrs(entry.abs);
  }

  /** Queues the entry's catalog row (written in batches). */
  private remember(entry: WalkEntry, xattrs: readonly Xattr[]): void {
    const { abs, type, mode, uid, gid, stamp, nlink, rdev, linkTarget } = entry;
    this.commits.entry({ path: abs, type, mode, uid, gid, stamp, nlink, rdev, linkTarget, xattrs });
  }

  /** Records a file; a promise while it is being read (undefined when the catalog had it). */
  private file(entry: WalkEntry): Promise<unknown> | undefined {
    this.progress.currentPath = entry.abs;
    if (entry.nlink <= 1) {
      // Synchronous for an unchanged file: no promise per file on a re-run.
      const done = this.content(entry);
      return done instanceof Promise ? done : undefined;
    }
    // Memory for hard links only: one map entry per inode with several names.
    const key = `${entry.stamp.dev}:${entry.stamp.inode}`;
    const mine = this.linkOrRead(entry, this.links.get(key));
    this.links.set(key, mine);
    return mine;
  }

  /**
   * A name of an inode with several: linked to the set's first name that was backed up (its
   * content is the set's), or, when none was (the first could not be read), read as the first.
   */
  private async linkOrRead(entry: WalkEntry, before: Promise<LinkLeader | undefined> | undefined): Promise<LinkLeader | undefined> {
    const leader = before && (await before);
    if (!leader) return this.content(entry);
    this.summary.hardLinks++;
    this.builder.add(this.base(entry, leader.xattrs, leader.size), [], leader.id);
    this.remember(entry, leader.xattrs);
    this.fileDone(0);
    return leader;
  }

  /** Records a file with its content: from the catalog when unchanged, else read. Undefined when unreadable. */
  private content(entry: WalkEntry): LinkLeader | Promise<LinkLeader | undefined> {
    const known = this.o.catalog.lookupFile(entry.abs, entry.stamp);
    if (known.status !== "unchanged") return this.read(entry, known.status);
    this.summary.filesUnchanged++;
    // Only the metadata changed (or its attributes were never read): its row is rewritten.
    const xattrs = known.xattrs ?? readXattrs(entry.abs);
    if (!known.xattrs) this.remember(entry, xattrs);
    const size = Number(entry.stamp.size);
    const id = this.builder.add(this.base(entry, xattrs, size), known.chunks);
    this.fileDone(size);
    return { id, size, xattrs };
  }

  /** Reads a new or changed file. */
  private async read(entry: WalkEntry, status: "new" | "changed"): Promise<LinkLeader | undefined> {
    const xattrs = readXattrs(entry.abs);
    this.remember(entry, xattrs);
    let result: LaneResult | undefined;
    let changed = false;
    for (let attempt = 1; attempt <= MAX_READ_ATTEMPTS; attempt++) {
      try {
        result = await this.readFile(entry);
      } catch (err) {
        // A file that cannot be read is skipped and reported; anything else (the store, a
        // pack worker failing) ends the run instead of quietly skipping every file.
        this.pipeline.throwIfFailed();
        if (!isFileError(err)) throw err;
        this.error(entry.abs, err);
        this.commits.reread(entry.abs);
        return undefined;
      }
      changed = !sameContent(entry.stamp, result.stamp) || BigInt(result.size) !== result.stamp.size;
      if (!changed) break;
      // Read it again against its new stat; a file still changing after that is recorded as is.
      entry = { ...entry, stamp: result.stamp };
    }
    if (!result) return undefined;
    if (status === "changed") this.summary.filesChanged++;
    else this.summary.filesNew++;
    this.summary.bytesRead += result.bytesRead;
    this.summary.bytesNew += result.bytesNew;
    const id = this.builder.add({ ...this.base(entry, xattrs, result.size), status: changed ? "changed" : undefined }, result.chunks);
    if (changed) {
      this.summary.changedDuringBackup.push(displayPath(entry.abs));
      // It must be read again next time, so its row keeps no chunk list.
      this.commits.reread(entry.abs);
    } else this.commits.fileRead(entry.abs, result.stamp, result.chunks, this.deps(result));
    this.fileDone(0);
    return { id, size: result.size, xattrs };
  }

  /** The snapshot row of a walked entry, owner names included; `size` is a file's (0 for others). */
  private base(entry: WalkEntry, xattrs: readonly Xattr[], size = 0): SnapshotEntry {
    return {
      path: entry.path,
      type: entry.type,
      mode: entry.mode,
      uid: entry.uid,
      gid: entry.gid,
      userName: this.owners.user(entry.uid),
      groupName: this.owners.group(entry.gid),
      size,
      mtimeNs: entry.stamp.mtimeNs,
      linkTarget: entry.linkTarget,
      rdev: entry.rdev,
      xattrs,
    };
  }

  private fileDone(bytes: number): void {
    this.progress.filesDone++;
    this.progress.bytesDone += bytes;
  }

  private async readFile(entry: WalkEntry): Promise<LaneResult> {
    const size = Number(entry.stamp.size);
    // Fewer bytes allocated than the size: it may have holes, read its data regions only.
    const regions = entry.allocated !== undefined && entry.allocated < size ? sparseRegions(entry.abs, size) : undefined;
    return this.pipeline.file(entry.abs, size, regions);
  }

  /** What a file's catalog row waits for before it may list its chunks (catalog-commits.ts). */
  private deps(r: LaneResult): FileDeps {
    return { lane: r.lane, id: r.id, needSeq: r.needSeq, others: r.others.map((i) => chunkHashAt(r.chunks, i)) };
  }

  private async stream(source: StreamSource): Promise<void> {
    // The index knows streams by an absolute path, as it knows walked files.
    const abs = `/${source.path}`;
    if (source.due !== undefined && this.carryForward(source, abs)) return;
    const result = await this.pipeline.stream(source.open(this.o.signal));
    await source.finished();
    this.summary.bytesRead += result.bytesRead;
    this.summary.bytesNew += result.bytesNew;
    const now = BigInt(this.started.getTime()) * 1_000_000n;
    this.builder.add({ path: source.path, type: "file", mode: 0o600, uid: 0, gid: 0, size: result.size, mtimeNs: now }, result.chunks);
    this.summary.filesNew++;
    if (source.due === undefined) return;
    // Remembered like a read file (its chunk list only once every chunk is stored), with the
    // run's time as its mtime: the time carryForward asks `due` about.
    const stamp = { size: BigInt(result.size), mtimeNs: now, ctimeNs: now, inode: 0n, dev: 0n };
    this.commits.entry({ path: abs, type: "file", mode: 0o600, uid: 0, gid: 0, stamp });
    this.commits.fileRead(abs, stamp, result.chunks, this.deps(result));
  }

  /** Adds a scheduled stream's last output again when it is not due; false: produce it now. */
  private carryForward(source: StreamSource, abs: string): boolean {
    const last = this.o.catalog.entry(abs);
    if (last?.type !== "file" || source.due!(new Date(Number(last.stamp.mtimeNs / 1_000_000n)), this.started)) return false;
    // Its chunks may be gone (a prune removed their blobs): then it is produced again.
    const known = this.o.catalog.lookupFile(abs, last.stamp);
    if (known.status !== "unchanged") return false;
    const size = Number(last.stamp.size);
    this.builder.add({ path: source.path, type: "file", mode: 0o600, uid: 0, gid: 0, size, mtimeNs: last.stamp.mtimeNs }, known.chunks);
    this.summary.filesUnchanged++;
    this.fileDone(size);
    return true;
  }
}


/** ctime too: `cp -p` and `rsync -t` rewrite content and then restore the mtime. */
function sameContent(a: FileStamp, b: FileStamp): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.inode === b.inode;
}
