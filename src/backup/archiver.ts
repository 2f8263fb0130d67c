import { hostname } from "node:os";
import type { Catalog, FileStamp } from "../catalog/db.js";
import { recipientSetId } from "../catalog/recipients.js";
import { chunkerParams, type ChunkerParams } from "../chunk/fastcdc.js";
import type { X25519Recipient } from "../crypto/keys.js";
import { PackWriter } from "../pack/writer.js";
import type { Repository } from "../repo/repository.js";
import { SnapshotBuilder } from "../snapshot/build.js";
import type { FileChunkRef, SnapshotEntry, Xattr } from "../snapshot/schema.js";
import type { ChunkId } from "../model/ids.js";
import { newSnapshotId } from "../model/snapshot-id.js";
import { displayPath } from "../model/path-bytes.js";
import { Budget } from "../util/budget.js";
import { TaskPool } from "../util/pool.js";
import { VERSION } from "../version.js";
import { CatalogCommits } from "./catalog-commits.js";
import type { Excluder } from "./exclude.js";
import { ChunkPool } from "./chunk-pool.js";
import { chunkSource, type ChunkItem } from "./chunker.js";
import { Packer } from "./packer.js";
import { Uploader } from "./uploader.js";
import { checkSourceDirs, snapshotPath, walk, type DirtySet, type WalkEntry } from "./walker.js";
import { loadOwnerNames, type OwnerNames } from "./owners.js";
import { readXattrs } from "./xattrs.js";
import { sparseRegions } from "./sparse.js";
import { crashPoint } from "../util/test-points.js";
import { errorMessage } from "../errors.js";

// One backup run: walk, skip what the catalog says is unchanged, chunk and deduplicate the
// rest, pack and upload new chunks, then upload the snapshot database. Files are processed a
// few at a time so disk reads, zstd (on the libuv pool) and uploads overlap. What the catalog
// learns and when is catalog-commits.ts; compression and its memory bound is packer.ts.
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
  fileConcurrency?: number;
  /** Chunking worker threads; default: one per core. */
  workers?: number;
  uploadConcurrency?: number;
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
}

const MAX_READ_ATTEMPTS = 2;
/** Bytes of file content being chunked at once, across all files (see file()). */
const BYTES_IN_FLIGHT = 32 << 20;
/** What one large file costs at most: its chunking window plus a batch of frames. */
const FILE_COST_MAX = 16 << 20;
/** What any file costs at least (buffers, messages, a file descriptor). */
const FILE_COST_MIN = 64 << 10;

/** The first name of a hard-link set that was backed up: what its later names link to. */
interface LinkLeader {
  id: number;
  size: number;
  xattrs: Xattr[];
}

export class Archiver {
  readonly progress: BackupProgress = { filesDone: 0, bytesDone: 0, currentPath: "" };
  private readonly params: ChunkerParams;
  private readonly packer: Packer;
  private readonly uploader: Uploader;
  private readonly commits: CatalogCommits;
  /** Created by run(), so an archiver that never runs starts no threads. */
  private pool!: ChunkPool;
  private readonly budget = new Budget(BYTES_IN_FLIGHT);
  private readonly summary: Omit<BackupSummary, "snapshotId" | "durationMs" | "snapshotSize" | "bytesUploaded" | "blobsUploaded">;
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
    const writer = new PackWriter({
      recipients: o.recipients,
      blobSizeLimit: o.blobSizeLimit,
      // Blobs up to the limit stay in memory; only larger limits spill ciphertext to workDir.
      spool: { memoryLimit: Math.min(o.blobSizeLimit, 64 << 20), dir: `${o.workDir}/spool` },
    });
    this.commits = new CatalogCommits(o.catalog);
    this.uploader = new Uploader({
      repo: o.repo,
      catalog: o.catalog,
      concurrency: o.uploadConcurrency ?? 2,
      signal: o.signal,
      onCommitted: (blob) => this.commits.committed(blob),
    });
    this.packer = new Packer(writer, (sealed) => this.uploader.enqueue(sealed));
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
    this.pool = new ChunkPool({
      catalogPath: this.o.catalog.path,
      params: this.params,
      isStored: (hash) => this.o.catalog.hasChunk(hash),
      workers: this.o.workers,
    });
    try {
      const files = new TaskPool(this.o.fileConcurrency ?? 32);
      const walkOptions = { signal, dirty: this.o.dirty, catalog: this.o.catalog };
      for await (const ev of walk(this.o.sourceDirs, this.o.exclude, walkOptions)) {
        signal?.throwIfAborted();
        this.packer.throwIfFailed();
        if (ev.kind === "error") this.error(ev.abs, ev.error);
        else if (ev.kind === "gone") this.o.catalog.dropSubtree(ev.abs);
        else if (ev.kind === "socket") {
          this.summary.sockets++;
          this.builder.addSocket();
        }
        else if (ev.kind === "entry") {
          const { entry } = ev;
          if (entry.type === "file") {
            // Large files hold a chunking window and batches of frames; bound their sum.
            const cost = Math.min(Number(entry.stamp.size), FILE_COST_MAX) + FILE_COST_MIN;
            await this.budget.acquire(cost);
            await files.run(() => this.file(entry).finally(() => this.budget.release(cost)));
          }
          else this.other(entry);
        }
      }
      for (const s of this.o.streams ?? []) await files.run(() => this.stream(s));
      await files.drain();
      await this.packer.finish();
      await this.uploader.drain();
      this.commits.flush();
      const { blobs } = this.builder.finish(this.o.catalog);
      await this.o.beforeCommit?.(blobs);
      crashPoint("before-snapshot-put");
      const snapshotSize = await this.o.repo.putSnapshot(this.snapshotId, this.builder.path, this.o.recipients, { signal });
      crashPoint("after-snapshot-put");
      // Only a full walk saw everything; an incremental one leaves unvisited rows as they are.
      if (!this.o.dirty) this.o.catalog.dropEntriesMissingFrom(this.builder);
      this.o.catalog.setState("last_snapshot", this.snapshotId);
      return {
        snapshotId: this.snapshotId,
        ...this.summary,
        bytesUploaded: this.uploader.bytesUploaded + snapshotSize,
        blobsUploaded: this.uploader.blobsUploaded,
        snapshotSize,
        durationMs: Date.now() - this.started.getTime(),
      };
    } catch (err) {
      await this.packer.abort();
      // Uploads still running would record blobs into a catalog we are about to close.
      await this.uploader.drain().catch(() => {});
      throw err;
    } finally {
      await this.pool.close();
      this.builder.discard();
    }
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

  private async file(entry: WalkEntry): Promise<void> {
    this.progress.currentPath = entry.abs;
    if (entry.nlink <= 1) {
      // Synchronous for an unchanged file: no extra promise per file on a re-run.
      const done = this.content(entry);
      if (done instanceof Promise) await done;
      return;
    }
    // Memory for hard links only: one map entry per inode with several names.
    const key = `${entry.stamp.dev}:${entry.stamp.inode}`;
    const mine = this.linkOrRead(entry, this.links.get(key));
    this.links.set(key, mine);
    await mine;
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
    let result: { chunks: FileChunkRef[]; size: number; stamp: FileStamp } | undefined;
    let changed = false;
    for (let attempt = 1; attempt <= MAX_READ_ATTEMPTS; attempt++) {
      try {
        result = await this.readFile(entry);
      } catch (err) {
        // A file that cannot be read is skipped and reported; anything else (the store, the
        // packer, a chunk worker failing) ends the run instead of quietly skipping every file.
        this.packer.throwIfFailed();
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
    const id = this.builder.add({ ...this.base(entry, xattrs, result.size), status: changed ? "changed" : undefined }, result.chunks);
    if (changed) {
      this.summary.changedDuringBackup.push(displayPath(entry.abs));
      // It must be read again next time, so its row keeps no chunk list.
      this.commits.reread(entry.abs);
    } else this.commits.fileRead(entry.abs, result.stamp, result.chunks);
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

  private async readFile(entry: WalkEntry): Promise<{ chunks: FileChunkRef[]; size: number; stamp: FileStamp }> {
    const chunks: FileChunkRef[] = [];
    const size = Number(entry.stamp.size);
    // Fewer bytes allocated than the size: it may have holes, read its data regions only.
    const regions = entry.allocated !== undefined && entry.allocated < size ? sparseRegions(entry.abs, size) : undefined;
    const result = await this.pool.chunkFile(entry.abs, size, (items) => this.take(items, chunks, true), regions);
    return { chunks, size: result.size, stamp: result.stamp };
  }

  private async stream(source: StreamSource): Promise<void> {
    const chunks: FileChunkRef[] = [];
    const size = await chunkSource(source.open(this.o.signal), this.params, {
      isStored: (hash) => this.o.catalog.hasChunk(hash),
      emit: (items) => this.take(items, chunks, false),
      signal: this.o.signal,
    });
    await source.finished();
    const now = BigInt(this.started.getTime()) * 1_000_000n;
    this.builder.add({ path: source.path, type: "file", mode: 0o600, uid: 0, gid: 0, size, mtimeNs: now }, chunks);
    this.summary.filesNew++;
  }

  /**
   * Takes a batch of chunks of one source, in order: records their ids and packs the ones the
   * repository lacks (a chunk another file packed moments ago is pending, not new). Resolves
   * once the packer has room again, which paces the chunkers.
   */
  private async take(items: ChunkItem[], chunks: FileChunkRef[], countProgress: boolean): Promise<void> {
    this.o.signal?.throwIfAborted();
    await this.uploader.whenRoom();
    for (const item of items) {
      const hash = Buffer.from(item.hash.buffer, item.hash.byteOffset, item.hash.byteLength);
      chunks.push({ offset: item.offset, length: item.rawLength, hash });
      this.summary.bytesRead += item.rawLength;
      if (countProgress) this.progress.bytesDone += item.rawLength;
      if (!item.data) continue;
      const hex = hash.toString("hex") as ChunkId;
      if (!this.commits.claim(hash, hex)) continue;
      this.summary.bytesNew += item.rawLength;
      this.packer.add(item.data, hex);
    }
    await this.packer.room();
  }
}

/** A failure of the file itself (errno from the kernel), as opposed to one of the run. */
function isFileError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^E[A-Z0-9]+$/.test(code);
}

/** ctime too: `cp -p` and `rsync -t` rewrite content and then restore the mtime. */
function sameContent(a: FileStamp, b: FileStamp): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.ctimeNs === b.ctimeNs && a.inode === b.inode;
}
