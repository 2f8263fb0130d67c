import { createHash } from "node:crypto";
import { AgeDecryptor, openHeader, planRange, type OpenedHeader } from "../crypto/age.js";
import type { X25519Identity } from "../crypto/keys.js";
import { IntegrityError } from "../errors.js";
import { getBytes, type ReadableStore } from "../store/bytes.js";
import type { CallOptions } from "../store/store.js";
import { frameChunks } from "./frame.js";
import { blobKey } from "./names.js";
import type { ChunkLocation } from "../model/chunk.js";

// Reads chunks back out of blobs. Two ways: one chunk by ranged GETs (header, then only the
// STREAM segments that hold its frame), or a whole blob streamed once, yielding its chunks in
// order. Every chunk is checked against its id; a whole blob also against its name.

/** The part of a Store a reader needs. */
export type BlobSource = ReadableStore;

const HEADER_PROBE = 4096;
const HEADER_CACHE = 256;

export class BlobReader {
  private readonly headers = new Map<string, Promise<OpenedHeader>>();
  /** Ciphertext bytes fetched from the store so far (headers, ranges and whole blobs). */
  bytesFetched = 0;

  constructor(
    private readonly store: BlobSource,
    private readonly identities: readonly X25519Identity[],
  ) {}

  /** Reads one chunk with ranged GETs. */
  async readChunk(loc: ChunkLocation, options: CallOptions = {}): Promise<Buffer> {
    const object = blobKey(loc.blob);
    return (await frameChunks(await this.readFrame(loc, options), [loc], object))[0] as Buffer;
  }

  /** The (still compressed) zstd frame holding `loc`, by ranged GETs: header, then its segments. */
  async readFrame(loc: ChunkLocation, options: CallOptions = {}): Promise<Buffer> {
    const key = blobKey(loc.blob);
    const opened = await this.header(loc.blob, options);
    const plan = planRange(opened, loc.offset, loc.length, key);
    const sealed = await getBytes(this.store, key, { ...options, range: { offset: plan.offset, length: plan.length } });
    this.bytesFetched += sealed.length;
    return plan.open(sealed);
  }

  private header(blob: string, options: CallOptions): Promise<OpenedHeader> {
    let p = this.headers.get(blob);
    if (!p) {
      p = this.fetchHeader(blob, options);
      if (this.headers.size >= HEADER_CACHE) this.headers.delete(this.headers.keys().next().value as string);
      this.headers.set(blob, p);
      p.catch(() => this.headers.delete(blob));
    }
    return p;
  }

  private async fetchHeader(blob: string, options: CallOptions): Promise<OpenedHeader> {
    const key = blobKey(blob);
    // One recipient needs ~200 bytes; read more only for headers with many recipients.
    for (let probe = HEADER_PROBE; ; probe *= 4) {
      const prefix = await getBytes(this.store, key, { ...options, range: { offset: 0, length: probe } });
      this.bytesFetched += prefix.length;
      const opened = openHeader(prefix, this.identities, key);
      if (opened) return opened;
      if (prefix.length < probe) throw new IntegrityError(key, "age file truncated inside its header");
    }
  }

  /**
   * Streams a whole blob and yields the listed chunks (in offset order) as they are decrypted.
   * The blob's SHA-256 is checked against its name when the stream ends, so a caller must treat
   * chunks as provisional until the generator returns (each chunk is already verified by id).
   */
  async *readBlob(
    blob: string,
    chunks: readonly ChunkLocation[],
    options: CallOptions = {},
  ): AsyncGenerator<{ loc: ChunkLocation; data: Buffer }> {
    const object = blobKey(blob);
    for await (const f of this.readFrames(blob, chunks, options)) {
      const data = await frameChunks(f.frame, f.chunks, object);
      for (let i = 0; i < f.chunks.length; i++) yield { loc: f.chunks[i] as ChunkLocation, data: data[i] as Buffer };
    }
  }

  /**
   * Streams a whole blob and yields the zstd frames that hold the listed chunks, still
   * compressed, each with its chunks (for a caller that decompresses and checks them elsewhere,
   * with frameChunks). Same provisional rule as readBlob: the blob's name is checked at the end.
   */
  async *readFrames(blob: string, chunks: readonly ChunkLocation[], options: CallOptions = {}): AsyncGenerator<WantedFrame> {
    const key = blobKey(blob);
    const frames = framesOf(chunks);
    const dec = new AgeDecryptor(this.identities, key);
    const hash = createHash("sha256");
    let plainPos = 0; // plaintext offset of pending[0]
    let pending: Buffer[] = [];
    let pendingLen = 0;
    let next = 0;

    // Drops plaintext before the next wanted frame so memory stays at about one frame.
    const take = function* (plain: Buffer[]): Generator<WantedFrame> {
      for (const p of plain) {
        pending.push(p);
        pendingLen += p.length;
      }
      while (next < frames.length) {
        const f = frames[next] as { offset: number; length: number; chunks: ChunkLocation[] };
        while (pending.length > 0 && plainPos + (pending[0] as Buffer).length <= f.offset) {
          const dropped = pending.shift() as Buffer;
          plainPos += dropped.length;
          pendingLen -= dropped.length;
        }
        if (plainPos + pendingLen < f.offset + f.length) break;
        const all = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending);
        yield { offset: f.offset, frame: all.subarray(f.offset - plainPos, f.offset - plainPos + f.length), chunks: f.chunks };
        next++;
        const keepFrom = Math.min(f.offset + f.length, (frames[next] ?? f).offset) - plainPos;
        pending = [all.subarray(Math.max(0, keepFrom))];
        pendingLen = pending[0]?.length ?? 0;
        plainPos += Math.max(0, keepFrom);
      }
      if (next >= frames.length) {
        plainPos += pendingLen;
        pending = [];
        pendingLen = 0;
      }
    };

    for await (const part of await this.store.get(key, options)) {
      this.bytesFetched += (part as Buffer).length;
      hash.update(part as Buffer);
      yield* take(dec.push(part as Buffer));
    }
    yield* take(dec.finish());
    if (hash.digest("hex") !== blob) {
      throw new IntegrityError(key, "blob content does not match its name (SHA-256 mismatch)");
    }
    if (next < frames.length) {
      throw new IntegrityError(key, `blob ends before chunk at offset ${(frames[next] as { offset: number }).offset}`);
    }
  }
}

/** A zstd frame of a blob, compressed, and the wanted chunks it holds. */
export interface WantedFrame {
  /** Offset in the blob's plaintext. */
  offset: number;
  frame: Buffer;
  chunks: ChunkLocation[];
}

/** Groups chunks by the frame that holds them, in offset order. */
function framesOf(chunks: readonly ChunkLocation[]): { offset: number; length: number; chunks: ChunkLocation[] }[] {
  const sorted = [...chunks].sort((a, b) => a.offset - b.offset || a.rawOffset - b.rawOffset);
  const frames: { offset: number; length: number; chunks: ChunkLocation[] }[] = [];
  for (const loc of sorted) {
    const last = frames[frames.length - 1];
    if (last?.offset === loc.offset) last.chunks.push(loc);
    else frames.push({ offset: loc.offset, length: loc.length, chunks: [loc] });
  }
  return frames;
}
