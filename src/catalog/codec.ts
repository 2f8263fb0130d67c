import { decodePath, encodePath } from "../model/path-bytes.js";

// The index's packed columns. A file's chunk list is one BLOB of fixed-size records (hash,
// file offset, length), so an unchanged file becomes its snapshot rows without a query per
// chunk, and a sparse file keeps its holes (a gap between records). Extended attributes are
// one BLOB too: they are read back only as a whole, for the file's next snapshot.

/** A chunk of a file at a byte offset (the shape of the snapshot's FileChunkRef). */
export interface ChunkRef {
  offset: number;
  length: number;
  hash: Uint8Array;
}

/** An extended attribute; the name is an internal path-like string (model/path-bytes). */
export interface XattrRecord {
  name: string;
  value: Uint8Array;
}

const HASH = 32;
/** Bytes of one packChunks record. */
export const CHUNK_RECORD = HASH + 8 + 4;
const RECORD = CHUNK_RECORD;

/** hash | offset (u64 LE) | length (u32 LE), one record per chunk, in offset order. */
export function packChunks(chunks: readonly ChunkRef[]): Buffer {
  const out = Buffer.allocUnsafe(chunks.length * RECORD);
  let at = 0;
  for (const c of chunks) at = writeChunkRecord(out, at, c.hash, c.offset, c.length);
  return out;
}

/** Writes one packChunks record at `at`; returns the offset after it. */
export function writeChunkRecord(out: Buffer, at: number, hash: Uint8Array, offset: number, length: number): number {
  out.set(hash, at);
  // Two u32 halves: BigInt conversions cost more than the rest of an unchanged file's lookup.
  out.writeUInt32LE(offset % 2 ** 32, at + HASH);
  out.writeUInt32LE(Math.floor(offset / 2 ** 32), at + HASH + 4);
  out.writeUInt32LE(length, at + HASH + 8);
  return at + RECORD;
}

export function unpackChunks(packed: Uint8Array): ChunkRef[] {
  const b = Buffer.from(packed.buffer, packed.byteOffset, packed.byteLength);
  const out: ChunkRef[] = [];
  for (let at = 0; at + RECORD <= b.length; at += RECORD) {
    out.push({ hash: b.subarray(at, at + HASH), offset: b.readUInt32LE(at + HASH) + b.readUInt32LE(at + HASH + 4) * 2 ** 32, length: b.readUInt32LE(at + HASH + 8) });
  }
  return out;
}

/** name length (u16 LE) | name bytes | value length (u32 LE) | value, per attribute; none = empty. */
export function packXattrs(xattrs: readonly XattrRecord[]): Buffer {
  const parts: Buffer[] = [];
  for (const x of xattrs) {
    const name = encodePath(x.name);
    const head = Buffer.allocUnsafe(2);
    head.writeUInt16LE(name.length);
    const len = Buffer.allocUnsafe(4);
    len.writeUInt32LE(x.value.byteLength);
    parts.push(head, name, len, Buffer.from(x.value.buffer, x.value.byteOffset, x.value.byteLength));
  }
  return Buffer.concat(parts);
}

export function unpackXattrs(packed: Uint8Array): XattrRecord[] {
  const b = Buffer.from(packed.buffer, packed.byteOffset, packed.byteLength);
  const out: XattrRecord[] = [];
  let at = 0;
  while (at + 2 <= b.length) {
    const nameLength = b.readUInt16LE(at);
    const name = decodePath(b.subarray(at + 2, at + 2 + nameLength));
    at += 2 + nameLength;
    const valueLength = b.readUInt32LE(at);
    out.push({ name, value: b.subarray(at + 4, at + 4 + valueLength) });
    at += 4 + valueLength;
  }
  return out;
}
