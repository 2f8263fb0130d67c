import { AgeEncryptor } from "../crypto/age.js";
import type { X25519Recipient } from "../crypto/keys.js";
import { SEALED_SEGMENT_SIZE, SEGMENT_SIZE, TAG_SIZE, PAYLOAD_NONCE_SIZE } from "../crypto/stream.js";
import type { PutBody } from "../store/store.js";
import { chunkId } from "./names.js";
import { Spool, type SpoolOptions } from "./spool.js";
import { COMPRESSION, compressFrame, DEFAULT_LEVEL } from "./zstd.js";

// A blob is one age file whose plaintext is the chunks' zstd frames back to back. The writer
// only produces bytes: storing a sealed blob is the caller's job, so it can be tested without a
// store and the same code serves every backend.

/** Where a chunk lives: everything a reader needs besides the key. */
export interface ChunkLocation {
  /** SHA-256 of the chunk's plaintext, hex. */
  id: string;
  /** Name of the blob (SHA-256 of its ciphertext, hex). */
  blob: string;
  /** Offset of the chunk's zstd frame in the blob's plaintext. */
  offset: number;
  /** Length of the zstd frame. */
  length: number;
  /** Length of the chunk itself. */
  rawLength: number;
  compression: typeof COMPRESSION;
}

export interface SealedBlob extends BlobIdentity {
  body: PutBody;
  sha256: Buffer;
  chunks: ChunkLocation[];
  /** Releases the spooled ciphertext; call after storing it. */
  dispose(): Promise<void>;
}

export interface BlobIdentity {
  name: string;
  /** Ciphertext size. */
  size: number;
  /** Length of the age header (the payload nonce follows it). */
  headerLength: number;
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

export class PackWriter {
  private current: OpenBlob | undefined;
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
   */
  async add(data: Uint8Array, id = chunkId(data)): Promise<SealedBlob[]> {
    const frame = await compressFrame(data, this.options.level ?? DEFAULT_LEVEL);
    return this.serial(() => this.append(id, frame, data.length));
  }

  /** Appends a chunk already compressed as one zstd frame (by a chunk worker). */
  async addFrame(id: string, frame: Uint8Array, rawLength: number): Promise<SealedBlob[]> {
    return this.serial(() => this.append(id, Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength), rawLength));
  }

  /** Closes the open blob, if any. */
  async flush(): Promise<SealedBlob[]> {
    return this.serial(async () => (this.current ? [await this.seal()] : []));
  }

  /** Abandons the open blob and its spooled bytes. */
  async abort(): Promise<void> {
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

  private async append(id: string, frame: Buffer, rawLength: number): Promise<SealedBlob[]> {
    const sealed: SealedBlob[] = [];
    if (this.current && this.current.chunks.length > 0) {
      const grown = ageFileSize(this.current.enc.headerLength, this.current.plainLength + frame.length);
      if (grown > this.options.blobSizeLimit) sealed.push(await this.seal());
    }
    const blob = this.current ?? (await this.open());
    blob.chunks.push({ id, offset: blob.plainLength, length: frame.length, rawLength, compression: COMPRESSION });
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
    const { body, size, sha256, dispose } = await blob.spool.seal();
    const name = sha256.toString("hex");
    return {
      name,
      size,
      headerLength: blob.enc.headerLength,
      body,
      sha256,
      chunks: blob.chunks.map((c) => ({ ...c, blob: name })),
      dispose,
    };
  }
}
