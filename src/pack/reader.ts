import { createHash } from "node:crypto";
import { AgeDecryptor, openHeader, planRange, type OpenedHeader } from "../crypto/age.js";
import type { X25519Identity } from "../crypto/keys.js";
import { IntegrityError } from "../errors.js";
import { getBytes, type ReadableStore } from "../store/bytes.js";
import type { CallOptions } from "../store/store.js";
import { blobKey, chunkId } from "./names.js";
import type { ChunkLocation } from "./writer.js";
import { decompressFrame } from "./zstd.js";

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
    const key = blobKey(loc.blob);
    const opened = await this.header(loc.blob, options);
    const plan = planRange(opened, loc.offset, loc.length, key);
    const sealed = await getBytes(this.store, key, { ...options, range: { offset: plan.offset, length: plan.length } });
    this.bytesFetched += sealed.length;
    return chunkOf(await decompressFrame(plan.open(sealed), loc.rawOffset + loc.rawLength, key), loc, key);
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
    const key = blobKey(blob);
    const wanted = [...chunks].sort((a, b) => a.offset - b.offset || a.rawOffset - b.rawOffset);
    // Small chunks share frames: keep the last frame decompressed for its neighbours.
    let lastFrame: { offset: number; raw: Buffer } | undefined;
    const dec = new AgeDecryptor(this.identities, key);
    const hash = createHash("sha256");
    let plainPos = 0; // plaintext offset of pending[0]
    let pending: Buffer[] = [];
    let pendingLen = 0;
    let next = 0;

    // Drops plaintext before the next wanted frame so memory stays at about one frame.
    const take = async function* (plain: Buffer[]): AsyncGenerator<{ loc: ChunkLocation; data: Buffer }> {
      for (const p of plain) {
        pending.push(p);
        pendingLen += p.length;
      }
      while (next < wanted.length) {
        const loc = wanted[next] as ChunkLocation;
        while (pending.length > 0 && plainPos + (pending[0] as Buffer).length <= loc.offset) {
          const dropped = pending.shift() as Buffer;
          plainPos += dropped.length;
          pendingLen -= dropped.length;
        }
        if (plainPos + pendingLen < loc.offset + loc.length) break;
        const all = pending.length === 1 ? (pending[0] as Buffer) : Buffer.concat(pending);
        if (lastFrame?.offset !== loc.offset) {
          const frame = all.subarray(loc.offset - plainPos, loc.offset - plainPos + loc.length);
          lastFrame = { offset: loc.offset, raw: await decompressFrame(frame, loc.rawOffset + loc.rawLength, key) };
        }
        yield { loc, data: chunkOf(lastFrame.raw, loc, key) };
        next++;
        const keepFrom = Math.min(loc.offset + loc.length, (wanted[next] ?? loc).offset) - plainPos;
        pending = [all.subarray(Math.max(0, keepFrom))];
        pendingLen = pending[0]?.length ?? 0;
        plainPos += Math.max(0, keepFrom);
      }
      if (next >= wanted.length) {
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
    if (next < wanted.length) {
      throw new IntegrityError(key, `blob ends before chunk at offset ${(wanted[next] as ChunkLocation).offset}`);
    }
  }
}

/** The chunk's bytes inside its decompressed frame, checked against its id. */
function chunkOf(frameRaw: Buffer, loc: ChunkLocation, object: string): Buffer {
  if (frameRaw.length < loc.rawOffset + loc.rawLength) {
    throw new IntegrityError(object, `zstd frame at offset ${loc.offset} is shorter than chunk ${loc.id.slice(0, 16)}… needs`);
  }
  const data = frameRaw.subarray(loc.rawOffset, loc.rawOffset + loc.rawLength);
  if (chunkId(data) !== loc.id) {
    throw new IntegrityError(object, `chunk ${loc.id.slice(0, 16)}… at offset ${loc.offset} does not match its id`);
  }
  return data;
}
