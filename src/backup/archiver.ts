import { createHash } from "node:crypto";
import type { BigIntStats } from "node:fs";
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { hostname } from "node:os";
import type { Catalog, CatalogEntry, FileStamp } from "../catalog/db.js";
import { chunkerParams, chunkStream, type ChunkerParams } from "../chunk/fastcdc.js";
import type { X25519Recipient } from "../crypto/keys.js";
import { PackWriter, type SealedBlob } from "../pack/writer.js";
import type { Repository } from "../repo/repository.js";
import { SnapshotBuilder } from "../snapshot/build.js";
import { newSnapshotId } from "../snapshot/id.js";
import { TaskPool } from "../util/pool.js";
import { VERSION } from "../version.js";
import type { Excluder } from "./exclude.js";
import { Uploader } from "./uploader.js";
import { walk, type DirtySet, type WalkEntry } from "./walker.js";

// One backup run: walk, skip what the catalog says is unchanged, chunk and deduplicate the
// rest, pack and upload new chunks, then upload the snapshot database. Files are processed a
// few at a time so disk reads, zstd (on the libuv pool) and uploads overlap.

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
  /** Bytes of file content read from disk (unchanged files are not read). */
  bytesRead: number;
  /** Bytes of chunks not already in the repository, before compression. */
  bytesNew: number;
  /** Ciphertext bytes uploaded: new blobs plus the snapshot database. */
  bytesUploaded: number;
  blobsUploaded: number;
  snapshotSize: number;
  errors: { path: string; message: string }[];
  changedDuringBackup: string[];
  durationMs: number;
}

const MAX_READ_ATTEMPTS = 2;
const READ_SIZE = 1 << 20;
const ADDS_IN_FLIGHT = 4;
const FILE_BATCH = 500;

interface Waiter {
  path: string;
  stamp: FileStamp;
  chunks: Buffer[];
  remaining: number;
}

export class Archiver {
  readonly progress: BackupProgress = { filesDone: 0, bytesDone: 0, currentPath: "" };
  private readonly params: ChunkerParams;
  private readonly writer: PackWriter;
  private readonly uploader: Uploader;
  /** Chunks packed in this run whose blob is not yet stored, and the files waiting on them. */
  private readonly pending = new Map<string, Waiter[]>();
  private readyFiles: Waiter[] = [];
  private seen: CatalogEntry[] = [];
  private rereads: string[] = [];
  private readonly summary: Omit<BackupSummary, "snapshotId" | "durationMs" | "snapshotSize" | "bytesUploaded" | "blobsUploaded">;
  private readonly builder: SnapshotBuilder;
  private readonly snapshotId: string;
  private readonly started: Date;

  constructor(private readonly o: BackupOptions) {
    this.params = chunkerParams(o.chunkSize);
    this.started = (o.now ?? (() => new Date()))();
    this.snapshotId = newSnapshotId(this.started, o.host ?? hostname());
    this.writer = new PackWriter({
      recipients: o.recipients,
      blobSizeLimit: o.blobSizeLimit,
      // Blobs up to the limit stay in memory; only larger limits spill ciphertext to workDir.
      spool: { memoryLimit: Math.min(o.blobSizeLimit, 64 << 20), dir: `${o.workDir}/spool` },
    });
    this.uploader = new Uploader({
      repo: o.repo,
      catalog: o.catalog,
      concurrency: o.uploadConcurrency ?? 3,
      signal: o.signal,
      onCommitted: (blob) => this.committed(blob),
    });
    this.summary = {
      filesNew: 0, filesChanged: 0, filesUnchanged: 0, dirs: 0, symlinks: 0,
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
    try {
      const files = new TaskPool(this.o.fileConcurrency ?? 4);
      const walkOptions = { signal, dirty: this.o.dirty, catalog: this.o.catalog };
      for await (const ev of walk(this.o.sourceDirs, this.o.exclude, walkOptions)) {
        signal?.throwIfAborted();
        if (ev.kind === "error") this.error(ev.path, ev.error);
        else if (ev.kind === "entry") {
          const { entry } = ev;
          if (entry.type === "file") await files.run(() => this.file(entry));
          else this.other(entry);
        }
      }
      for (const s of this.o.streams ?? []) await files.run(() => this.stream(s));
      await files.drain();
      await this.uploader.enqueue(await this.writer.flush());
      await this.uploader.drain();
      this.flushFiles();
      const { blobs } = this.builder.finish(this.o.catalog);
      await this.o.beforeCommit?.(blobs);
      const snapshotSize = await this.o.repo.putSnapshot(this.snapshotId, this.builder.path, this.o.recipients, { signal });
      // Only a full walk saw everything; an incremental one leaves unvisited rows as they are.
      if (!this.o.dirty) this.o.catalog.dropEntriesNotSeenSince(this.started.getTime());
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
      await this.writer.abort();
      // Uploads still running would record blobs into a catalog we are about to close.
      await this.uploader.drain().catch(() => {});
      throw err;
    } finally {
      this.builder.discard();
    }
  }

  private error(path: string, err: unknown): void {
    const message = err instanceof Error ? err.message : String(err);
    this.summary.errors.push({ path, message });
    this.builder.addError(path, message);
  }

  private other(entry: WalkEntry): void {
    if (entry.type === "symlink") this.summary.symlinks++;
    else this.summary.dirs++;
    this.builder.add({ ...baseEntry(entry), linkTarget: entry.linkTarget });
    this.remember(entry);
  }

  /** Queues the entry's catalog row (written in batches). */
  private remember(entry: WalkEntry): void {
    const { abs, type, mode, uid, gid, stamp, linkTarget } = entry;
    this.seen.push({ path: abs, type, mode, uid, gid, stamp, linkTarget });
    if (this.seen.length >= FILE_BATCH) this.flushFiles();
  }

  private async file(entry: WalkEntry): Promise<void> {
    const known = this.o.catalog.lookupFile(entry.abs, entry.stamp);
    this.remember(entry);
    this.progress.currentPath = entry.abs;
    if (known.status === "unchanged") {
      this.summary.filesUnchanged++;
      this.builder.add(baseEntry(entry), known.chunks);
      this.fileDone(Number(entry.stamp.size));
      return;
    }
    let result: { chunks: Buffer[]; size: number; stamp: FileStamp } | undefined;
    let changed = false;
    for (let attempt = 1; attempt <= MAX_READ_ATTEMPTS; attempt++) {
      try {
        result = await this.readFile(entry);
      } catch (err) {
        this.error(entry.path, err);
        this.rereads.push(entry.abs);
        return;
      }
      changed = !sameContent(entry.stamp, result.stamp) || BigInt(result.size) !== result.stamp.size;
      if (!changed) break;
      // Read it again against its new stat; a file still changing after that is recorded as is.
      entry = { ...entry, stamp: result.stamp };
    }
    if (!result) return;
    if (known.status === "changed") this.summary.filesChanged++;
    else this.summary.filesNew++;
    this.builder.add({ ...baseEntry(entry), size: result.size, status: changed ? "changed" : undefined }, result.chunks);
    if (changed) {
      this.summary.changedDuringBackup.push(entry.path);
      // It must be read again next time, so its row keeps no chunk list.
      this.rereads.push(entry.abs);
    } else this.wait({ path: entry.abs, stamp: result.stamp, chunks: result.chunks, remaining: 0 });
    this.fileDone(0);
  }

  private fileDone(bytes: number): void {
    this.progress.filesDone++;
    this.progress.bytesDone += bytes;
  }

  private async readFile(entry: WalkEntry): Promise<{ chunks: Buffer[]; size: number; stamp: FileStamp }> {
    // O_NOFOLLOW: if the path became a symlink since the walk, do not read what it points at.
    const fh = await open(entry.abs, constants.O_RDONLY | constants.O_NOFOLLOW);
    try {
      const { signal } = this.o;
      // Sized to the file (plus one byte to see the end in one read) up to READ_SIZE: small
      // files are the common case and a megabyte each would only feed the garbage collector.
      const buf = Buffer.allocUnsafe(Math.min(READ_SIZE, Number(entry.stamp.size) + 1));
      const self = this;
      async function* reads(): AsyncGenerator<Uint8Array> {
        for (;;) {
          signal?.throwIfAborted();
          const { bytesRead } = await fh.read(buf, 0, buf.length, null);
          if (bytesRead === 0) return;
          self.progress.bytesDone += bytesRead;
          yield buf.subarray(0, bytesRead);
        }
      }
      const { chunks, size } = await this.store(reads());
      return { chunks, size, stamp: stampOf(await fh.stat({ bigint: true })) };
    } finally {
      await fh.close();
    }
  }

  private async stream(source: StreamSource): Promise<void> {
    const { chunks, size } = await this.store(source.open(this.o.signal));
    await source.finished();
    const now = BigInt(this.started.getTime()) * 1_000_000n;
    this.builder.add({ path: source.path, type: "file", mode: 0o600, uid: 0, gid: 0, size, mtimeNs: now }, chunks);
    this.summary.filesNew++;
  }

  /** Chunks a byte stream, packs the chunks the repository lacks, and returns all chunk hashes. */
  private async store(source: AsyncIterable<Uint8Array>): Promise<{ chunks: Buffer[]; size: number }> {
    const chunks: Buffer[] = [];
    let size = 0;
    const adds = new Set<Promise<void>>();
    let failure: unknown;
    for await (const data of chunkStream(source, this.params)) {
      const hash = createHash("sha256").update(data).digest();
      chunks.push(hash);
      size += data.length;
      const hex = hash.toString("hex");
      if (this.pending.has(hex) || this.o.catalog.hasChunk(hash)) continue;
      this.pending.set(hex, []);
      this.summary.bytesNew += data.length;
      const p: Promise<void> = this.writer
        .add(data, hex)
        .then((sealed) => this.uploader.enqueue(sealed))
        .catch((err: unknown) => {
          failure ??= err;
        })
        .finally(() => adds.delete(p));
      adds.add(p);
      while (adds.size >= ADDS_IN_FLIGHT) await Promise.race(adds);
      if (failure !== undefined) throw failure;
    }
    await Promise.all(adds);
    if (failure !== undefined) throw failure;
    this.summary.bytesRead += size;
    return { chunks, size };
  }

  /** Queues a file's catalog row until every chunk it references is stored. */
  private wait(w: Waiter): void {
    for (const c of w.chunks) {
      const waiters = this.pending.get(c.toString("hex"));
      if (waiters) {
        waiters.push(w);
        w.remaining++;
      }
    }
    if (w.remaining === 0) this.ready(w);
  }

  private ready(w: Waiter): void {
    this.readyFiles.push(w);
    if (this.readyFiles.length >= FILE_BATCH) this.flushFiles();
  }

  private committed(blob: SealedBlob): void {
    for (const c of blob.chunks) {
      const waiters = this.pending.get(c.id);
      this.pending.delete(c.id);
      for (const w of waiters ?? []) if (--w.remaining === 0) this.ready(w);
    }
  }

  private flushFiles(): void {
    // Entries first: a chunk list is only stored on a row whose stamp it matches.
    this.o.catalog.recordEntries(this.seen, this.started.getTime());
    this.o.catalog.recordChunks(this.readyFiles);
    this.o.catalog.forgetChunks(this.rereads);
    this.seen = [];
    this.readyFiles = [];
    this.rereads = [];
  }
}

function stampOf(s: BigIntStats): FileStamp {
  return { size: s.size, mtimeNs: s.mtimeNs, ctimeNs: s.ctimeNs, inode: s.ino, dev: s.dev };
}

function sameContent(a: FileStamp, b: FileStamp): boolean {
  return a.size === b.size && a.mtimeNs === b.mtimeNs && a.inode === b.inode;
}

function baseEntry(entry: WalkEntry) {
  return {
    path: entry.path,
    type: entry.type,
    mode: entry.mode,
    uid: entry.uid,
    gid: entry.gid,
    size: entry.type === "file" ? Number(entry.stamp.size) : 0,
    mtimeNs: entry.stamp.mtimeNs,
  };
}
