import { closeSync, constants, fchownSync, fchmodSync, ftruncateSync, futimesSync, openSync } from "node:fs";
import { frameChunksEach } from "../pack/frame.js";
import type { ChunkLocation } from "../model/chunk.js";
import type { ChunkId } from "../model/ids.js";
import { writeAllSync } from "../util/fsio.js";
import { errorMessage } from "../errors.js";
import { fsPath } from "../model/path-bytes.js";
import { inDirLock } from "./dir-locks.js";

// The file end of a restore: decompresses and checks frames, writes their chunks at their
// offsets, and finishes a single-chunk file (size, owner, mode, times) through the descriptor
// it was written with. Synchronous file calls on purpose: this runs on a writer thread (or,
// without one, on the main thread), where a blocking call costs only the kernel's time, not the
// ~15 µs of promise bookkeeping per call. Files with more chunks keep a descriptor between
// writes while they stay among the recent ones; the restorer finishes them after all writes.

/** What a file gets once its content is written. */
export interface FileMeta {
  size: number;
  mode: number;
  uid: number;
  gid: number;
  /** Seconds since the epoch, as utimeSeconds gives them. */
  mtime: number;
}

/**
 * The mode a restore gives: setuid only with the owner it was for (a setuid file owned by
 * whoever restores would run as them); setgid and sticky always, as restic does. The kernel
 * itself drops setgid where the restoring user is not in the file's group.
 */
export function restoredMode(mode: number, owners: boolean): number {
  return mode & (owners ? 0o7777 : 0o3777);
}

export interface WriteOp {
  fileId: number;
  /** Absolute destination (an internal path string: model/path-bytes), its parents already made safe (SafeTree), no older file in it. */
  abs: string;
  offset: number;
  /** Set when this write is the file's whole content: finish the file with it. */
  finish?: FileMeta;
}

/**
 * What to do with one zstd frame, compact: typed arrays and one entry per file, not objects per
 * chunk, which cost the main thread more to build and to post than the chunks cost to write.
 */
export interface FrameWork {
  /** The frame's offset in the blob's plaintext (for messages). */
  offset: number;
  /** The distinct chunks wanted from it: ids, and [rawOffset, rawLength] pairs in `raw`. */
  ids: string[];
  raw: Float64Array;
  /** Targets as [chunk index, file index, offset in the file] triples, in chunk order. */
  t: Float64Array;
  files: { fileId: number; abs: string; finish?: FileMeta }[];
}

/** Work for a sink, its bytes at [start, start + length) of the batch's buffer. */
export type SinkItem =
  | { kind: "frame"; start: number; length: number; object: string; work: FrameWork }
  | { kind: "raw"; start: number; length: number; target: WriteOp };

/** FrameWork from chunk locations and their writes (tests and callers with few chunks). */
export function frameWork(chunks: readonly { loc: ChunkLocation; targets: readonly WriteOp[] }[]): FrameWork {
  const files: FrameWork["files"] = [];
  const index = new Map<number, number>();
  const t: number[] = [];
  const raw: number[] = [];
  chunks.forEach((c, i) => {
    raw.push(c.loc.rawOffset, c.loc.rawLength);
    for (const op of c.targets) {
      let f = index.get(op.fileId);
      if (f === undefined) index.set(op.fileId, (f = files.push({ fileId: op.fileId, abs: op.abs, ...(op.finish ? { finish: op.finish } : {}) }) - 1));
      t.push(i, f, op.offset);
    }
  });
  return { offset: chunks[0]?.loc.offset ?? 0, ids: chunks.map((c) => c.loc.id), raw: Float64Array.from(raw), t: Float64Array.from(t), files };
}

export interface SinkFailure {
  fileId: number;
  path: string;
  message: string;
}

/** Whether `b` starts where `a` ends in the same memory (chunks of one decompressed frame). */
function adjoins(a: Buffer, b: Buffer): boolean {
  return a.buffer === b.buffer && a.byteOffset + a.length === b.byteOffset;
}

/** Descriptors kept open between a file's chunks. */
const MAX_OPEN = 64;
/** Frames decompressing at once per batch (on libuv's pool). */
const DECODE_AHEAD = 4;

export class FileSink {
  private readonly open = new Map<number, number>();
  bytes = 0;
  files = 0;

  constructor(
    private readonly owners: boolean,
    /** Directory locks shared with other writer threads (dir-locks.ts); none on the main thread alone. */
    private readonly locks?: Int32Array,
  ) {}

  /** Applies a batch; what fails is returned per file, the rest is still done. */
  applyBatch(items: readonly SinkItem[], data: Uint8Array): Promise<SinkFailure[]> {
    return this.applyAll(items.map((item) => ({ item, bytes: data.subarray(item.start, item.start + item.length) })));
  }

  /** Applies frames given each in its own bytes (cut from a blob by a writer thread), like applyBatch. */
  applyFrames(frames: readonly { bytes: Uint8Array; object: string; work: FrameWork }[]): Promise<SinkFailure[]> {
    return this.applyAll(frames.map(({ bytes, object, work }) => ({ item: { kind: "frame", start: 0, length: bytes.length, object, work }, bytes })));
  }

  private async applyAll(list: readonly { item: SinkItem; bytes: Uint8Array }[]): Promise<SinkFailure[]> {
    const failed: SinkFailure[] = [];
    const decode = ({ item, bytes }: { item: SinkItem; bytes: Uint8Array }): Promise<(Buffer | Error)[] | Error> => {
      if (item.kind === "raw") return Promise.resolve([]);
      const w = item.work;
      const locs = w.ids.map((id, i) => ({ id: id as ChunkId, offset: w.offset, rawOffset: w.raw[2 * i]!, rawLength: w.raw[2 * i + 1]! }));
      return frameChunksEach(bytes, locs, item.object).catch((e: Error) => e);
    };
    const decoding: Promise<(Buffer | Error)[] | Error>[] = [];
    for (let i = 0; i < list.length; i++) {
      while (decoding.length < Math.min(list.length, i + DECODE_AHEAD)) decoding.push(decode(list[decoding.length]!));
      const { item, bytes } = list[i]!;
      const chunks = await decoding[i]!;
      decoding[i] = Promise.resolve([]);
      if (item.kind === "raw") {
        this.tryApply(item.target, bytes, failed);
        continue;
      }
      this.applyFrame(item.work, chunks, failed);
    }
    return failed;
  }

  /**
   * Writes a frame's chunks. Consecutive chunks of one file that follow each other in the file
   * and in the frame go out as one write: a file of 100k small chunks is a few hundred writes.
   */
  private applyFrame(w: FrameWork, chunks: (Buffer | Error)[] | Error, failed: SinkFailure[]): void {
    let run: { file: number; offset: number; data: Buffer } | undefined;
    const flush = () => {
      if (!run) return;
      const f = w.files[run.file]!;
      this.tryApply({ fileId: f.fileId, abs: f.abs, offset: run.offset }, run.data, failed);
      run = undefined;
    };
    for (let k = 0; k < w.t.length; k += 3) {
      const f = w.files[w.t[k + 1]!]!;
      const chunk = chunks instanceof Error ? chunks : chunks[w.t[k]!]!;
      const offset = w.t[k + 2]!;
      if (chunk instanceof Error) {
        failed.push({ fileId: f.fileId, path: f.abs, message: chunk.message });
        continue;
      }
      // A file of one chunk is finished by its write, through the same descriptor.
      if (f.finish) {
        this.tryApply({ fileId: f.fileId, abs: f.abs, offset, finish: f.finish }, chunk, failed);
        continue;
      }
      if (run && run.file === w.t[k + 1] && run.offset + run.data.length === offset && adjoins(run.data, chunk)) {
        run.data = Buffer.from(run.data.buffer, run.data.byteOffset, run.data.length + chunk.length);
        continue;
      }
      flush();
      run = { file: w.t[k + 1]!, offset, data: chunk };
    }
    flush();
  }

  /** Closes what is still open (files with more chunks, finished by the restorer). */
  closeAll(): void {
    for (const [id, fd] of this.open) this.forget(id, fd);
  }

  private tryApply(op: WriteOp, data: Uint8Array, failed: SinkFailure[]): void {
    try {
      this.apply(op, data);
    } catch (err) {
      failed.push({ fileId: op.fileId, path: op.abs, message: errorMessage(err) });
    }
  }

  private apply(op: WriteOp, data: Uint8Array): void {
    let fd = this.open.get(op.fileId);
    const kept = fd !== undefined;
    // O_NOFOLLOW: a symlink at this name in the target is never followed.
    fd ??= inDirLock(this.locks, op.abs, () => openSync(fsPath(op.abs), constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600));
    try {
      writeAllSync(fd, data, op.offset);
      this.bytes += data.length;
      if (op.finish) {
        // The file held nothing before (see WriteOp.abs), so one write of its size is its size.
        finishFile(fd, op.finish, this.owners, op.offset === 0 ? data.length : undefined);
        this.files++;
      }
    } catch (err) {
      if (kept) this.open.delete(op.fileId);
      closeSync(fd);
      throw err;
    }
    if (op.finish) {
      if (kept) this.open.delete(op.fileId);
      closeSync(fd);
    } else if (!kept) {
      this.open.set(op.fileId, fd);
      if (this.open.size > MAX_OPEN) {
        const [id, oldest] = this.open.entries().next().value as [number, number];
        this.forget(id, oldest);
      }
    }
  }

  private forget(id: number, fd: number): void {
    this.open.delete(id);
    try {
      closeSync(fd);
    } catch {
      // Nothing was lost that a write did not already report.
    }
  }
}

/**
 * Gives an open file its size (what is not written is a hole), owner (when restoring owners),
 * then `attributes` (extended attributes: after the owner, since a chown drops file
 * capabilities; before the mode, since setting an ACL changes it), mode and times, all through
 * the descriptor so nothing follows a symlink. `written` is the size it is known to have already.
 */
export function finishFile(fd: number, meta: FileMeta, owners: boolean, written?: number, attributes?: (fd: number) => void): void {
  if (written !== meta.size) ftruncateSync(fd, meta.size);
  if (owners) fchownSync(fd, meta.uid, meta.gid);
  attributes?.(fd);
  fchmodSync(fd, meta.mode);
  futimesSync(fd, meta.mtime, meta.mtime);
}
