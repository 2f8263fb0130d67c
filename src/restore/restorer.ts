import {
  chmodSync, chownSync, closeSync, constants, fchmodSync, fchownSync, ftruncateSync, futimesSync, lchownSync, lstatSync, lutimesSync,
  close, mkdirSync, open, openSync, symlinkSync, unlinkSync, utimesSync, writeSync,
} from "node:fs";
import type { X25519Identity } from "../crypto/keys.js";
import { IntegrityError } from "../errors.js";
import type { ChunkLocation } from "../pack/writer.js";
import type { Repository } from "../repo/repository.js";
import type { EntryRow, Placement, SnapshotReader } from "../snapshot/read.js";
import { TaskPool } from "../util/pool.js";
import { pathSegments, SafeTree } from "./paths.js";

// File system calls are synchronous on purpose: they hit the page cache and take microseconds,
// while each promise-based call costs the main thread about 15 µs of bookkeeping, which for
// tens of thousands of files was most of a restore's time.
//
// Restores a snapshot (or a subtree of it) in three passes: create directories and size every
// file, then read each needed blob once and write its chunks where they belong, then set modes,
// owners and times (directories last, deepest first, so writing children does not disturb
// them). Memory stays bounded: the plan streams out of SQLite one blob at a time.

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
  errors: { path: string; message: string }[];
}

/** File creations in flight in pass 1. */
const CREATE_CONCURRENCY = 16;
/** Chunk writes in flight per blob. */
const WRITE_CONCURRENCY = 4;

/** Below this share of a blob, chunks are fetched by ranged GETs instead of streaming it whole. */
const RANGED_BELOW = 0.25;

export class Restorer {
  readonly progress: RestoreProgress = { bytesWritten: 0, bytesTotal: 0, files: 0 };
  private readonly tree: SafeTree;
  private readonly dest: (path: string) => string;
  private readonly summary: RestoreSummary = { files: 0, dirs: 0, symlinks: 0, bytes: 0, blobs: 0, blobsStreamed: 0, blobsRanged: 0, bytesFetched: 0, errors: [] };
  private readonly reader;

  constructor(private readonly o: RestoreOptions) {
    this.tree = new SafeTree(o.target, o.snapshot.object);
    this.reader = o.repo.blobReader(o.identities);
    this.dest = o.destination ?? ((p) => p);
  }

  async run(): Promise<RestoreSummary> {
    const { snapshot, signal } = this.o;
    const unplaced = snapshot.unplacedChunks();
    if (unplaced > 0) throw new IntegrityError(snapshot.object, `${unplaced} chunk references have no blob location`);
    mkdirSync(this.o.target, { recursive: true });
    await this.createEntries();
    await this.writeChunks();
    signal?.throwIfAborted();
    await this.finishEntries();
    this.summary.bytesFetched = this.reader.bytesFetched;
    return this.summary;
  }

  private destOf(e: { path: string }): string {
    pathSegments(e.path, this.o.snapshot.object);
    const rel = this.dest(e.path);
    return this.tree.prepare(rel);
  }

  /**
   * Pass 1: directories exist, and every file exists, empty (pass 3 sets its final size).
   * Creating a file costs this file system 60-200 µs of kernel time, so creations run 16 at a
   * time on libuv's pool, through the callback API (the promise API costs the main thread more).
   */
  private async createEntries(): Promise<void> {
    const creating = new TaskPool(CREATE_CONCURRENCY);
    for (const e of this.o.snapshot.entries(this.o.prefix)) {
      this.o.signal?.throwIfAborted();
      if (e.type === "symlink") continue;
      if (e.type === "dir") {
        this.summary.dirs++;
        this.tree.ensureDir(this.destOf(e));
        continue;
      }
      this.progress.bytesTotal += e.size;
      this.summary.files++;
      // O_NOFOLLOW: a symlink already at this name in the target is not followed.
      const abs = this.destOf(e);
      await creating.run(() => createEmpty(abs));
    }
    await creating.drain();
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
    for (const p of this.o.snapshot.placements(this.o.prefix)) {
      if (batch.length > 0 && batch[0]!.loc.blob !== p.loc.blob) await flush();
      batch.push(p as Placement & { path: string });
    }
    await flush();
    await pool.drain();
  }

  private async restoreBlob(rows: Placement[]): Promise<void> {
    const blob = rows[0]!.loc.blob;
    const byChunk = new Map<string, { loc: ChunkLocation; targets: { path: string; offset: number }[] }>();
    for (const r of rows) {
      const entry = byChunk.get(r.loc.id) ?? { loc: r.loc, targets: [] };
      entry.targets.push({ path: r.path, offset: r.fileOffset });
      byChunk.set(r.loc.id, entry);
    }
    const needed = [...byChunk.values()];
    const neededBytes = needed.reduce((n, c) => n + c.loc.length, 0);
    const reader = this.reader;
    const options = { signal: this.o.signal };
    this.summary.blobs++;
    const writes = new TaskPool(WRITE_CONCURRENCY);
    try {
      if (neededBytes < RANGED_BELOW * rows[0]!.blobSize) {
        this.summary.blobsRanged++;
        for (const c of needed) {
          const data = await reader.readChunk(c.loc, options);
          await writes.run(() => this.place(c.targets, data));
        }
      } else {
        this.summary.blobsStreamed++;
        for await (const { loc, data } of reader.readBlob(blob, needed.map((c) => c.loc), options)) {
          await writes.run(() => this.place(byChunk.get(loc.id)!.targets, data));
        }
      }
      await writes.drain();
    } catch (err) {
      await writes.drain().catch(() => {});
      if (this.o.signal?.aborted) throw err;
      const files = [...new Set(rows.map((r) => r.path))];
      const shown = files.slice(0, 5).join(", ") + (files.length > 5 ? ` and ${files.length - 5} more` : "");
      this.summary.errors.push({ path: shown, message: (err as Error).message });
    }
  }

  private async place(targets: readonly { path: string; offset: number }[], data: Buffer): Promise<void> {
    for (const t of targets) {
      const abs = this.destOf(t);
      const fd = openSync(abs, constants.O_WRONLY | constants.O_NOFOLLOW);
      try {
        for (let done = 0; done < data.length; ) done += writeSync(fd, data, done, data.length - done, t.offset + done);
      } finally {
        closeSync(fd);
      }
      this.progress.bytesWritten += data.length;
      this.summary.bytes += data.length;
    }
  }

  /**
   * Pass 3: exact sizes (a longer file may have been in the target), owners, modes, times, all
   * through one descriptor per file so nothing follows a symlink; then symlinks (nothing is
   * written through them after this); directories last, deepest first.
   */
  private async finishEntries(): Promise<void> {
    const owners = this.o.owners ?? process.getuid?.() === 0;
    const dirs: EntryRow[] = [];
    for (const e of this.o.snapshot.entries(this.o.prefix)) {
      if (e.type === "dir") {
        dirs.push(e);
        continue;
      }
      const abs = this.destOf(e);
      const time = utimeSeconds(e.mtimeNs);
      if (e.type === "file") {
        const fd = openSync(abs, constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
        try {
          ftruncateSync(fd, e.size);
          if (owners) fchownSync(fd, e.uid, e.gid);
          fchmodSync(fd, e.mode);
          futimesSync(fd, time, time);
        } finally {
          closeSync(fd);
        }
        this.progress.files++;
      } else {
        replaceWithSymlink(abs, e.linkTarget ?? "");
        if (owners) lchownSync(abs, e.uid, e.gid);
        lutimesSync(abs, time, time);
        this.summary.symlinks++;
      }
    }
    // Deepest first: a directory made read-only must not stop changes below it.
    for (const e of dirs.reverse()) {
      const abs = this.destOf(e);
      const time = utimeSeconds(e.mtimeNs);
      if (owners) chownSync(abs, e.uid, e.gid);
      chmodSync(abs, e.mode);
      utimesSync(abs, time, time);
    }
  }
}

/** Creates (or empties) a regular file, never through a symlink. */
function createEmpty(abs: string): Promise<void> {
  return new Promise((resolve, reject) => {
    open(abs, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600, (err, fd) => {
      if (err) reject(err);
      else close(fd, (closeErr) => (closeErr ? reject(closeErr) : resolve()));
    });
  });
}

function replaceWithSymlink(abs: string, target: string): void {
  try {
    const st = lstatSync(abs);
    if (st.isDirectory()) throw new Error(`cannot restore symlink ${abs}: a directory is in the way`);
    unlinkSync(abs);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  symlinkSync(target, abs);
}

/**
 * Node's utimes takes seconds as a double, which libuv truncates to nanoseconds; at today's
 * epoch a double resolves about 0.24 µs. Aiming half a microsecond in makes the truncation land
 * on the right microsecond, so restored mtimes are exact to the microsecond.
 */
export function utimeSeconds(mtimeNs: bigint): number {
  return Number(mtimeNs / 1000n) / 1e6 + 5e-7;
}
