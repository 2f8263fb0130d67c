import { AgeEncryptor } from "../crypto/age.js";
import type { X25519Recipient } from "../crypto/keys.js";
import { SEALED_SEGMENT_SIZE, SEGMENT_SIZE, TAG_SIZE, PAYLOAD_NONCE_SIZE } from "../crypto/stream.js";
import type { PutBody } from "../store/store.js";

export type { BlobIdentity, ChunkLocation };
import { chunkId, type BlobName, type ChunkId } from "../model/ids.js";
import { COMPRESSION, type BlobIdentity, type ChunkLocation } from "../model/chunk.js";
import { Spool, type SpooledBody, type SpoolOptions } from "./spool.js";
import { compressFrame, DEFAULT_LEVEL } from "./zstd.js";

// A blob is one age file whose plaintext is the chunks' zstd frames back to back. The writer
// only produces bytes: storing a sealed blob is the caller's job, so it can be tested without a
// store and the same code serves every backend.

export interface SealedBlob extends BlobIdentity {
  body: PutBody;
  sha256: Buffer;
  chunks: ChunkLocation[];
  /** Releases the spooled ciphertext; call after storing it. */
  dispose(): Promise<void>;
  /** Where the ciphertext is (see SpooledBody.held). */
  held?: SpooledBody["held"];
}

export interface PackWriterOptions {
  recipients: readonly X25519Recipient[];
  /** Close a blob before its ciphertext would grow past this many bytes. */
  blobSizeLimit: number;
  level?: number;
  spool?: SpoolOptions;
}

/** Ciphertext size of an age file with this header length and plaintext length. */
export function ageFileSize(headerLength: number, plainLength: number): number {
  const segments = Math.max(1, Math.ceil(plainLength / SEGMENT_SIZE));
  return headerLength + PAYLOAD_NONCE_SIZE + plainLength + segments * TAG_SIZE;
}

interface OpenBlob {
  enc: AgeEncryptor;
  spool: Spool;
  plainLength: number;
  chunks: Omit<ChunkLocation, "blob">[];
}

/**
 * A blob is also closed at this many chunks. Until a blob is stored, each of its chunks costs
 * bookkeeping in memory (its location, and the files waiting for it); a million tiny files
 * would otherwise all wait in one blob, and memory would grow with the number of files.
 */
export const MAX_CHUNKS_PER_BLOB = 16384;

/** Chunks smaller than this share frames. */
export const SMALL_CHUNK = 16 * 1024;
/** A shared frame is compressed once it holds this many raw bytes… */
const GROUP_RAW = 64 * 1024;
/** …or this many chunks. */
const GROUP_CHUNKS = 256;

export class PackWriter {
  private current: OpenBlob | undefined;
  private group: { parts: Uint8Array[]; ids: ChunkId[]; raw: number } | undefined;
  // Appends are serialised so concurrent add() calls can compress in parallel on the thread
  // pool and still write one consistent stream.
  private tail: Promise<unknown> = Promise.resolve();

  constructor(private readonly options: PackWriterOptions) {
    if (options.blobSizeLimit < SEALED_SEGMENT_SIZE) {
      throw new RangeError(`blob size limit must be at least ${SEALED_SEGMENT_SIZE} bytes`);
    }
  }

  /**
   * Compresses a chunk and appends it. Resolves to the blobs this append closed (usually none;
   * the one before it when the chunk did not fit). `id` defaults to the hash of `data`.
   *
   * Small chunks (most files are small) are gathered and compressed together as one frame: a
   * zstd call has a fixed cost of about 80 µs, and small inputs also compress better together.
   * Each keeps its own id and location (rawOffset says where it starts inside the frame).
   */
  async add(data: Uint8Array, id = chunkId(data)): Promise<SealedBlob[]> {
    if (data.length < SMALL_CHUNK) {
      const group = (this.group ??= { parts: [], ids: [], raw: 0 });
      group.parts.push(data);
      group.ids.push(id);
      group.raw += data.length;
      if (group.raw < GROUP_RAW && group.parts.length < GROUP_CHUNKS) return [];
      return this.compressGroup();
    }
    const frame = await compressFrame(data, this.options.level ?? DEFAULT_LEVEL);
    return this.serial(() => this.append([{ id, rawOffset: 0, rawLength: data.length }], frame));
  }

  /** Compresses and appends the gathered small chunks, if any. */
  private async compressGroup(): Promise<SealedBlob[]> {
    const group = this.group;
    this.group = undefined;
    if (!group) return [];
    const frame = await compressFrame(Buffer.concat(group.parts), this.options.level ?? DEFAULT_LEVEL);
    let rawOffset = 0;
    const members = group.parts.map((part, i) => {
      const m = { id: group.ids[i]!, rawOffset, rawLength: part.length };
      rawOffset += part.length;
      return m;
    });
    return this.serial(() => this.append(members, frame));
  }

  /** Closes the open blob, if any, after appending the gathered small chunks. */
  async flush(): Promise<SealedBlob[]> {
    const sealed = await this.compressGroup();
    return [...sealed, ...(await this.serial(async () => (this.current ? [await this.seal()] : [])))];
  }

  /** Abandons the open blob and its spooled bytes. */
  async abort(): Promise<void> {
    this.group = undefined;
    await this.serial(async () => {
      await this.current?.spool.discard();
      this.current = undefined;
    });
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.tail.then(fn);
    this.tail = run.catch(() => {});
    return run;
  }

  private async append(members: readonly { id: ChunkId; rawOffset: number; rawLength: number }[], frame: Buffer): Promise<SealedBlob[]> {
    const sealed: SealedBlob[] = [];
    if (this.current && this.current.chunks.length > 0) {
      const grown = ageFileSize(this.current.enc.headerLength, this.current.plainLength + frame.length);
      const full = this.current.chunks.length + members.length > MAX_CHUNKS_PER_BLOB;
      if (grown > this.options.blobSizeLimit || full) sealed.push(await this.seal());
    }
    const blob = this.current ?? (await this.open());
    for (const m of members) {
      blob.chunks.push({ id: m.id, offset: blob.plainLength, length: frame.length, rawOffset: m.rawOffset, rawLength: m.rawLength, compression: COMPRESSION });
    }
    blob.plainLength += frame.length;
    await blob.spool.write(blob.enc.push(frame));
    return sealed;
  }

  private async open(): Promise<OpenBlob> {
    const enc = new AgeEncryptor(this.options.recipients);
    const spool = new Spool(this.options.spool);
    await spool.write([enc.prefix]);
    this.current = { enc, spool, plainLength: 0, chunks: [] };
    return this.current;
  }

  private async seal(): Promise<SealedBlob> {
    const blob = this.current;
    if (!blob) throw new Error("PackWriter: no open blob");
    this.current = undefined;
    await blob.spool.write(blob.enc.finish());
    const { body, size, sha256, dispose, held } = await blob.spool.seal();
    const name = sha256.toString("hex") as BlobName;
    return {
      name,
      size,
      headerLength: blob.enc.headerLength,
      body,
      sha256,
      chunks: blob.chunks.map((c) => ({ ...c, blob: name })),
      dispose,
      held,
    };
  }
}
