import { createHash } from "node:crypto";
import { closeSync, constants, fstatSync, openSync, readSync, type BigIntStats } from "node:fs";
import { open } from "node:fs/promises";
import type { FileStamp } from "../catalog/db.js";
import { chunkStream, type ChunkerParams } from "../chunk/fastcdc.js";
import { fsPath } from "../model/path-bytes.js";

// The CPU-heavy front of a backup, for one byte source: cut it into chunks and hash each; the
// bytes of chunks the repository does not have yet go along to the packer (which compresses
// them, small ones together). It runs in worker threads for files (see chunk-pool.ts) and on
// the main thread for command output. Results leave in batches, and the next batch waits until
// the consumer took the last one, so memory stays bounded.

export interface ChunkItem {
  /** SHA-256 of the chunk: its id. */
  hash: Uint8Array;
  /** Where in the file the chunk starts (a gap after the previous chunk is a hole). */
  offset: number;
  rawLength: number;
  /** The chunk's bytes; absent when the repository already has the chunk. */
  data?: Uint8Array;
}

/** Buffers a caller reuses from file to file (see chunkStream's `scratch`). */
export interface Scratch {
  work: Buffer;
  read: Buffer;
}

/** Scratch space for chunking with `params`. */
export function newScratch(params: ChunkerParams): Scratch {
  return { work: Buffer.allocUnsafeSlow(params.max + Math.max(4 << 20, 2 * params.max)), read: Buffer.allocUnsafeSlow(READ_SIZE) };
}

export interface ChunkSink {
  /** Whether the repository is known to have this chunk (then its bytes are not sent). */
  isStored(hash: Uint8Array): boolean;
  /** Takes a batch; the next batch is not produced before this resolves. */
  emit(items: ChunkItem[]): Promise<void>;
  signal?: AbortSignal;
}

export interface FileChunked {
  /** Bytes of the file, holes included. */
  size: number;
  /** The file's stat after reading, to detect a change during the read. */
  stamp: FileStamp;
}

const READ_SIZE = 1 << 20;
/** A batch leaves once its new bytes reach this size or it holds this many chunks. */
const BATCH_BYTES = 4 << 20;
const BATCH_ITEMS = 256;

/**
 * Chunks and hashes a byte stream, passing on the bytes of new chunks; returns its length.
 * `start` is the stream's offset in its file (a data region after a hole).
 */
export async function chunkSource(source: AsyncIterable<Uint8Array>, params: ChunkerParams, sink: ChunkSink, scratch?: Buffer, start = 0): Promise<number> {
  let size = 0;
  let batch: ChunkItem[] = [];
  let batchBytes = 0;
  for await (const data of chunkStream(source, params, { scratch })) {
    sink.signal?.throwIfAborted();
    const offset = start + size;
    size += data.length;
    const hash = createHash("sha256").update(data).digest();
    if (sink.isStored(hash)) batch.push({ hash, offset, rawLength: data.length });
    else {
      batch.push({ hash, offset, rawLength: data.length, data });
      batchBytes += data.length;
    }
    if (batchBytes >= BATCH_BYTES || batch.length >= BATCH_ITEMS) {
      await sink.emit(batch);
      batch = [];
      batchBytes = 0;
    }
  }
  if (batch.length > 0) await sink.emit(batch);
  return size;
}

/**
 * A file's data regions, [start, end) in order (sparse.ts); the bytes between them are holes.
 * Absent for a dense file, which is read to its end, however long that turns out to be.
 */
export type Regions = readonly (readonly [number, number])[];

/**
 * Reads a regular file (never through a symlink that replaced it) and chunks it. A file with
 * `regions` (it has holes) is read region by region: chunks never span a hole, and the holes
 * are neither read nor stored.
 *
 * `sync` reads with blocking system calls: right in a worker thread, whose only job this is,
 * because promise-based file I/O costs about 15 µs of the calling thread per call, which for
 * tens of thousands of small files is most of the work. The main thread must not block.
 */
export async function chunkFile(
  abs: string,
  expectedSize: number,
  params: ChunkerParams,
  sink: ChunkSink,
  sync = false,
  scratch?: Scratch,
  regions?: Regions,
): Promise<FileChunked> {
  return sync ? chunkFileSync(abs, expectedSize, params, sink, scratch, regions) : chunkFileAsync(abs, expectedSize, params, sink, regions);
}

async function chunkFileAsync(abs: string, expectedSize: number, params: ChunkerParams, sink: ChunkSink, regions?: Regions): Promise<FileChunked> {
  // O_NONBLOCK: a FIFO swapped in since the walk must not block the open (see notRegular).
  const fh = await open(fsPath(abs), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = await fh.stat();
    notRegular(abs, st);
    if (regions) {
      const read = (buf: Buffer, length: number, position: number) => fh.read(buf, 0, length, position).then((r) => r.bytesRead);
      await chunkRegions(regions, params, sink, read);
      return { size: st.size, stamp: stampOf(await fh.stat({ bigint: true })) };
    }
    const buf = readBuffer(expectedSize);
    async function* reads(): AsyncGenerator<Uint8Array> {
      for (;;) {
        const { bytesRead } = await fh.read(buf, 0, buf.length, null);
        if (bytesRead === 0) return;
        yield buf.subarray(0, bytesRead);
      }
    }
    const size = await chunkSource(reads(), params, sink);
    return { size, stamp: stampOf(await fh.stat({ bigint: true })) };
  } finally {
    await fh.close();
  }
}

async function chunkFileSync(
  abs: string, expectedSize: number, params: ChunkerParams, sink: ChunkSink, scratch: Scratch | undefined, regions: Regions | undefined,
): Promise<FileChunked> {
  const fd = openSync(fsPath(abs), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    const st = fstatSync(fd);
    notRegular(abs, st);
    if (regions) {
      const read = async (buf: Buffer, length: number, position: number) => readSync(fd, buf, 0, length, position);
      await chunkRegions(regions, params, sink, read, scratch);
      return { size: st.size, stamp: stampOf(fstatSync(fd, { bigint: true })) };
    }
    const buf = scratch?.read ?? readBuffer(expectedSize);
    function* reads(): Generator<Uint8Array> {
      for (;;) {
        const n = readSync(fd, buf, 0, buf.length, null);
        if (n === 0) return;
        yield buf.subarray(0, n);
      }
    }
    const size = await chunkSource(toAsync(reads()), params, sink, scratch?.work);
    return { size, stamp: stampOf(fstatSync(fd, { bigint: true })) };
  } finally {
    closeSync(fd);
  }
}

type PositionalRead = (buf: Buffer, length: number, position: number) => Promise<number>;

/** Chunks each data region on its own, at its offset: a chunk never spans a hole. */
async function chunkRegions(regions: Regions, params: ChunkerParams, sink: ChunkSink, read: PositionalRead, scratch?: Scratch): Promise<void> {
  const buf = scratch?.read ?? Buffer.allocUnsafe(READ_SIZE);
  for (const [start, end] of regions) {
    async function* reads(): AsyncGenerator<Uint8Array> {
      for (let pos = start; pos < end; ) {
        const n = await read(buf, Math.min(buf.length, end - pos), pos);
        if (n === 0) return; // truncated meanwhile: the stamp after the read tells
        pos += n;
        yield buf.subarray(0, n);
      }
    }
    await chunkSource(reads(), params, sink, scratch?.work, start);
  }
}

/**
 * Refuses what is no longer a regular file: a FIFO or device put in place of the file between
 * the walk and the read would block or never end.
 */
function notRegular(abs: string, st: { isFile(): boolean }): void {
  if (!st.isFile()) throw Object.assign(new Error(`${abs} is no longer a regular file`), { code: "ENOTREG" });
}

/** Sized to the file (plus one byte, to see the end in one read) up to READ_SIZE. */
function readBuffer(expectedSize: number): Buffer {
  return Buffer.allocUnsafe(Math.min(READ_SIZE, expectedSize + 1));
}

async function* toAsync<T>(items: Iterable<T>): AsyncGenerator<T> {
  yield* items;
}

function stampOf(st: BigIntStats): FileStamp {
  return { size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, inode: st.ino, dev: st.dev };
}
