import { closeSync, constants, fchownSync, fchmodSync, ftruncateSync, futimesSync, openSync } from "node:fs";
import { frameChunksEach } from "../pack/frame.js";
import type { ChunkLocation } from "../model/chunk.js";
import { writeAllSync } from "../util/fsio.js";
import { errorMessage } from "../errors.js";
import { fsPath } from "../model/path-bytes.js";

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

/** The mode a restore gives: setuid and setgid only with the owner they were for (as restic). */
export function restoredMode(mode: number, owners: boolean): number {
  return mode & (owners ? 0o7777 : 0o1777);
}

export interface WriteOp {
  fileId: number;
  /** Absolute destination (an internal path string: model/path-bytes), its parents already made safe (SafeTree), no older file in it. */
  abs: string;
  offset: number;
  /** Set when this write is the file's whole content: finish the file with it. */
  finish?: FileMeta;
}

/** Work for a sink, its bytes at [start, start + length) of the batch's buffer. */
export type SinkItem =
  | { kind: "frame"; start: number; length: number; object: string; chunks: { loc: ChunkLocation; targets: WriteOp[] }[] }
  | { kind: "raw"; start: number; length: number; target: WriteOp };

export interface SinkFailure {
  fileId: number;
  path: string;
  message: string;
}

/** Descriptors kept open between a file's chunks. */
const MAX_OPEN = 64;
/** Frames decompressing at once per batch (on libuv's pool). */
const DECODE_AHEAD = 4;

export class FileSink {
  private readonly open = new Map<number, number>();
  bytes = 0;
  files = 0;

  constructor(private readonly owners: boolean) {}

  /** Applies a batch; what fails is returned per file, the rest is still done. */
  async applyBatch(items: readonly SinkItem[], data: Uint8Array): Promise<SinkFailure[]> {
    const failed: SinkFailure[] = [];
    const decode = (item: SinkItem): Promise<(Buffer | Error)[] | Error> =>
      item.kind === "raw"
        ? Promise.resolve([])
        : frameChunksEach(data.subarray(item.start, item.start + item.length), item.chunks.map((c) => c.loc), item.object).catch((e: Error) => e);
    const decoding: Promise<(Buffer | Error)[] | Error>[] = [];
    for (let i = 0; i < items.length; i++) {
      while (decoding.length < Math.min(items.length, i + DECODE_AHEAD)) decoding.push(decode(items[decoding.length]!));
      const item = items[i]!;
      const chunks = await decoding[i]!;
      decoding[i] = Promise.resolve([]);
      if (item.kind === "raw") {
        this.tryApply(item.target, data.subarray(item.start, item.start + item.length), failed);
        continue;
      }
      item.chunks.forEach((c, j) => {
        const chunk = chunks instanceof Error ? chunks : chunks[j]!;
        for (const t of c.targets) {
          if (chunk instanceof Error) failed.push({ fileId: t.fileId, path: t.abs, message: chunk.message });
          else this.tryApply(t, chunk, failed);
        }
      });
    }
    return failed;
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
    fd ??= openSync(fsPath(op.abs), constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
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
