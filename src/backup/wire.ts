import { CHUNK_RECORD } from "../catalog/codec.js";
import type { FileStamp } from "../catalog/db.js";
import { COMPRESSION, type ChunkLocation } from "../model/chunk.js";
import type { BlobName, ChunkId } from "../model/ids.js";

// What a pack worker tells the main thread, as bytes: per-file results in batches and the chunk
// list of each blob it sealed. One buffer per message instead of an object per chunk, because
// structured cloning and garbage-collecting millions of small objects was main-thread time.
//
// A file's chunk list is exactly the catalog's packed form (catalog/codec.ts packChunks: hash,
// offset, length, 44 bytes each), so the main thread stores it as it came.

const HASH = 32;
const FILE_HEADER = 4 * 4 + 8 * 3 + 8 * 5;
const LOCATION = HASH + 8 + 4 * 3;

/** A file a worker finished reading. */
export interface FileResult {
  id: number;
  /** Bytes of the file, holes included. */
  size: number;
  /** Bytes read (holes are not). */
  bytesRead: number;
  /** Raw bytes of the chunks this file was first in the run to claim (so the worker stores them). */
  bytesNew: number;
  stamp: FileStamp;
  /** packChunks records, in offset order. */
  chunks: Buffer;
  /** Indexes of chunks another file of this run claimed first: stored once their blob is. */
  others: number[];
  /**
   * Which of the worker's blobs hold the chunks it stores for this file: 0 none, n > 0 blobs up
   * to its n-th (already sent), -1 some are not sealed yet (a later blob message names the file).
   */
  needSeq: number;
}

export function encodeFileResults(results: readonly FileResult[]): Buffer {
  let total = 0;
  for (const r of results) total += FILE_HEADER + r.chunks.length + 4 * r.others.length;
  // Its own ArrayBuffer of its own size, so it moves to the main thread instead of a copy of
  // Node's 8 KiB pool slab: a file waiting for its blob keeps its batch alive, and thousands of
  // small files waiting each kept a slab (150 MB of them on /usr/share).
  const out = Buffer.allocUnsafeSlow(total);
  let at = 0;
  for (const r of results) {
    at = out.writeUInt32LE(r.id, at);
    at = out.writeUInt32LE(r.chunks.length / CHUNK_RECORD, at);
    at = out.writeUInt32LE(r.others.length, at);
    at = out.writeInt32LE(r.needSeq, at);
    at = out.writeDoubleLE(r.size, at);
    at = out.writeDoubleLE(r.bytesNew, at);
    at = out.writeDoubleLE(r.bytesRead, at);
    at = out.writeBigUInt64LE(r.stamp.size, at);
    at = out.writeBigInt64LE(r.stamp.mtimeNs, at);
    at = out.writeBigInt64LE(r.stamp.ctimeNs, at);
    at = out.writeBigUInt64LE(r.stamp.inode, at);
    at = out.writeBigUInt64LE(r.stamp.dev, at);
    at += r.chunks.copy(out, at);
    for (const i of r.others) at = out.writeUInt32LE(i, at);
  }
  return out;
}

export function* decodeFileResults(data: Uint8Array): Generator<FileResult> {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  for (let at = 0; at < b.length; ) {
    const id = b.readUInt32LE(at);
    const n = b.readUInt32LE(at + 4);
    const nOthers = b.readUInt32LE(at + 8);
    const needSeq = b.readInt32LE(at + 12);
    const size = b.readDoubleLE(at + 16);
    const bytesNew = b.readDoubleLE(at + 24);
    const bytesRead = b.readDoubleLE(at + 32);
    const stamp: FileStamp = {
      size: b.readBigUInt64LE(at + 40),
      mtimeNs: b.readBigInt64LE(at + 48),
      ctimeNs: b.readBigInt64LE(at + 56),
      inode: b.readBigUInt64LE(at + 64),
      dev: b.readBigUInt64LE(at + 72),
    };
    at += FILE_HEADER;
    const chunks = b.subarray(at, at + n * CHUNK_RECORD);
    at += n * CHUNK_RECORD;
    const others: number[] = [];
    for (let i = 0; i < nOthers; i++, at += 4) others.push(b.readUInt32LE(at));
    yield { id, size, bytesNew, bytesRead, stamp, chunks, others, needSeq };
  }
}

/** The chunk id of record `i` of a packed chunk list. */
export function chunkHashAt(chunks: Buffer, i: number): Buffer {
  return chunks.subarray(i * CHUNK_RECORD, i * CHUNK_RECORD + HASH);
}

export function encodeLocations(chunks: readonly Omit<ChunkLocation, "blob">[]): Buffer {
  const out = Buffer.allocUnsafe(chunks.length * LOCATION);
  let at = 0;
  for (const c of chunks) {
    at += out.write(c.id, at, "hex");
    at = out.writeDoubleLE(c.offset, at);
    at = out.writeUInt32LE(c.length, at);
    at = out.writeUInt32LE(c.rawOffset, at);
    at = out.writeUInt32LE(c.rawLength, at);
  }
  return out;
}

export function decodeLocations(data: Uint8Array, blob: BlobName): ChunkLocation[] {
  const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const out: ChunkLocation[] = [];
  for (let at = 0; at + LOCATION <= b.length; at += LOCATION) {
    out.push({
      id: b.toString("hex", at, at + HASH) as ChunkId,
      blob,
      offset: b.readDoubleLE(at + HASH),
      length: b.readUInt32LE(at + HASH + 8),
      rawOffset: b.readUInt32LE(at + HASH + 12),
      rawLength: b.readUInt32LE(at + HASH + 16),
      compression: COMPRESSION,
    });
  }
  return out;
}
