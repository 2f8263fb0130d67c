import { createHash, type Hash } from "node:crypto";
import type { Readable } from "node:stream";
import { AgeDecryptor, openHeader, planRange, type OpenedHeader } from "../crypto/age.js";
import type { X25519Identity } from "../crypto/keys.js";
import { openSegmentsEach, SEALED_SEGMENT_SIZE, segmentSpan, StreamOpener } from "../crypto/stream.js";
import { IntegrityError } from "../errors.js";
import { frameChunks } from "./frame.js";
import type { ChunkLocation } from "../model/chunk.js";

// Reads chunks back out of blobs. Two ways: by ranged GETs (header, then only the STREAM
// segments that hold the wanted frames), or a whole blob streamed once, yielding its chunks in
// order. Every chunk is checked against its id; a whole blob also against its name.

export interface ReadOptions {
  signal?: AbortSignal;
}

/**
 * Where a reader gets blobs' bytes (the Repository). Ranges follow the Store contract: a range
 * past the end yields the bytes that exist; a missing blob rejects with NotFoundError.
 */
export interface BlobSource {
  /** Streams a whole blob. */
  openBlob(name: string, options?: ReadOptions): Promise<Readable>;
  /** Bytes `[offset, offset + length)` of a blob, in one buffer. */
  readBlobRange(name: string, range: { offset: number; length: number }, options?: ReadOptions): Promise<Buffer>;
  /** How errors name a blob (its object key). */
  blobObject(name: string): string;
}

const HEADER_PROBE = 4096;
/** Most ciphertext one ranged GET of readFramesRanged asks for (a larger frame gets its own). */
const SPAN_MAX = 4 << 20;
const HEADER_CACHE = 256;

export class BlobReader {
  private readonly headers = new Map<string, Promise<OpenedHeader>>();
  /** Ciphertext bytes fetched from the store so far (headers, ranges and whole blobs). */
  bytesFetched = 0;

  constructor(
    private readonly source: BlobSource,
    private readonly identities: readonly X25519Identity[],
  ) {}

  /** Reads one chunk with ranged GETs. */
  async readChunk(loc: ChunkLocation, options: ReadOptions = {}): Promise<Buffer> {
    const object = this.source.blobObject(loc.blob);
    return (await frameChunks(await this.readFrame(loc, options), [loc], object))[0] as Buffer;
  }

  /** The (still compressed) zstd frame holding `loc`, by ranged GETs: header, then its segments. */
  async readFrame(loc: ChunkLocation, options: ReadOptions = {}): Promise<Buffer> {
    const key = this.source.blobObject(loc.blob);
    const opened = await this.header(loc.blob, options);
    const plan = planRange(opened, loc.offset, loc.length, key);
    const sealed = await this.source.readBlobRange(loc.blob, { offset: plan.offset, length: plan.length }, options);
    this.bytesFetched += sealed.length;
    return plan.open(sealed);
  }

  /**
   * Reads the frames holding `chunks` by ranged GETs, one per run of adjacent segments (up to
   * SPAN_MAX), and yields them in offset order. A frame whose segments do not verify, or whose
   * range cannot be read, is yielded as a DamagedFrame and the others still come: one damaged
   * segment costs only the frames in it. Throws when the header cannot be read (every frame
   * would fail the same way) or on abort.
   */
  readFramesRanged(blob: string, chunks: readonly ChunkLocation[], options: ReadOptions = {}): AsyncGenerator<WantedFrame | DamagedFrame> {
    return this.rangedFrames(blob, framesOf(chunks), options);
  }

  /** readFramesRanged for frames given as such (in offset order), for a caller that tracks their chunks itself. */
  async *rangedFrames(blob: string, frames: readonly Frame[], options: ReadOptions = {}): AsyncGenerator<WantedFrame | DamagedFrame> {
    const key = this.source.blobObject(blob);
    const opened = await this.header(blob, options);
    for (const span of spansOf(frames)) {
      let segments: (Buffer | Error)[];
      try {
        const sealed = await this.source.readBlobRange(
          blob,
          { offset: opened.payloadOffset + span.first * SEALED_SEGMENT_SIZE, length: (span.last - span.first + 1) * SEALED_SEGMENT_SIZE },
          options,
        );
        this.bytesFetched += sealed.length;
        segments = openSegmentsEach(opened.payloadKey, span.first, sealed, key);
      } catch (err) {
        if (options.signal?.aborted) throw err;
        for (const f of span.frames) yield { offset: f.offset, chunks: f.chunks, error: err as Error };
        continue;
      }
      for (const f of span.frames) {
        const s = segmentSpan(f.offset, f.length);
        const parts = segments.slice(s.firstSegment - span.first, s.lastSegment - span.first + 1);
        const bad = parts.find((p): p is Error => p instanceof Error);
        const plain = bad ? undefined : parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts as Buffer[]);
        if (plain && plain.length >= s.skip + f.length) {
          yield { offset: f.offset, frame: plain.subarray(s.skip, s.skip + f.length), chunks: f.chunks };
        } else {
          const error = bad ?? new IntegrityError(key, `age payload ends before plaintext byte ${f.offset + f.length}`);
          yield { offset: f.offset, chunks: f.chunks, error };
        }
      }
    }
  }

  private header(blob: string, options: ReadOptions): Promise<OpenedHeader> {
    let p = this.headers.get(blob);
    if (!p) {
      p = this.fetchHeader(blob, options);
      if (this.headers.size >= HEADER_CACHE) this.headers.delete(this.headers.keys().next().value as string);
      this.headers.set(blob, p);
      p.catch(() => this.headers.delete(blob));
    }
    return p;
  }

  private async fetchHeader(blob: string, options: ReadOptions): Promise<OpenedHeader> {
    const key = this.source.blobObject(blob);
    // One recipient needs ~200 bytes; read more only for headers with many recipients.
    for (let probe = HEADER_PROBE; ; probe *= 4) {
      const prefix = await this.source.readBlobRange(blob, { offset: 0, length: probe }, options);
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
    options: ReadOptions = {},
  ): AsyncGenerator<{ loc: ChunkLocation; data: Buffer }> {
    const object = this.source.blobObject(blob);
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
  readFrames(blob: string, chunks: readonly ChunkLocation[], options: ReadOptions = {}): AsyncGenerator<WantedFrame> {
    return this.streamFrames(blob, framesOf(chunks), options);
  }

  /** readFrames for frames given as such (in offset order), for a caller that tracks their chunks itself. */
  async *streamFrames(blob: string, frames: readonly Frame[], options: ReadOptions = {}): AsyncGenerator<WantedFrame> {
    const key = this.source.blobObject(blob);
    const dec = new AgeDecryptor(this.identities, key);
    const hash = createHash("sha256");
    const cutter = new FrameCutter(frames);
    const wanted = function* (cut: Iterable<CutFrame<Frame>>): Generator<WantedFrame> {
      for (const c of cut) yield { offset: c.frame.offset, frame: c.bytes, chunks: c.frame.chunks };
    };
    for await (const part of await this.source.openBlob(blob, options)) {
      this.bytesFetched += (part as Buffer).length;
      hash.update(part as Buffer);
      yield* wanted(cutter.take(dec.push(part as Buffer)));
    }
    yield* wanted(cutter.take(dec.finish()));
    verifyBlob(hash, blob, key, cutter);
  }

  /**
   * Streams a whole blob to `sink` as it comes, untouched: only the header is opened here (for
   * the payload key), so decrypting, checking and cutting frames can happen elsewhere (a restore's
   * writer threads, with SealedFrames). Throws what opening the blob or its header throws;
   * `start` is called once, before the first push.
   */
  async forwardBlob(blob: string, sink: SealedSink, options: ReadOptions = {}): Promise<void> {
    const key = this.source.blobObject(blob);
    let head: Buffer | undefined = Buffer.alloc(0);
    const held: Buffer[] = [];
    for await (const chunk of await this.source.openBlob(blob, options)) {
      const part = chunk as Buffer;
      this.bytesFetched += part.length;
      if (head === undefined) {
        await sink.push(part);
        continue;
      }
      // A header cut across parts is rare (one recipient needs ~200 bytes): only then a copy.
      head = head.length === 0 ? part : Buffer.concat([head, part]);
      held.push(part);
      const opened = openHeader(head, this.identities, key);
      if (!opened) continue;
      head = undefined;
      sink.start({ payloadKey: opened.payloadKey, payloadOffset: opened.payloadOffset });
      for (const h of held.splice(0)) await sink.push(h);
    }
    if (head !== undefined) {
      // The same messages as a whole-blob read: cut inside the header, empty, not an age file.
      const dec = new AgeDecryptor(this.identities, key);
      dec.push(head);
      dec.finish();
    }
  }
}

/** Where forwardBlob sends a blob's bytes. */
export interface SealedSink {
  start(opened: SealedStart): void;
  /** Takes `part` (the caller does not use it again); resolves when more may come. */
  push(part: Buffer): Promise<void>;
}

/** What decrypting a forwarded blob needs: the payload key (a secret: never logged) and where the payload starts. */
export interface SealedStart {
  payloadKey: Uint8Array;
  payloadOffset: number;
}

/** A wanted frame's plaintext bytes, cut from a blob. */
export interface CutFrame<F> {
  frame: F;
  bytes: Buffer;
}

/**
 * Cuts wanted frames (in offset order) out of a blob's plaintext as it arrives, dropping what
 * lies between them, so memory stays at about one frame.
 */
export class FrameCutter<F extends { offset: number; length: number }> {
  private plainPos = 0; // plaintext offset of pending[0]
  private pending: Buffer[] = [];
  private pendingLen = 0;
  private next = 0;

  constructor(private readonly frames: readonly F[]) {}

  /** The first wanted frame not cut yet, if any. */
  get missing(): F | undefined {
    return this.frames[this.next];
  }

  *take(plain: readonly Buffer[]): Generator<CutFrame<F>> {
    for (const p of plain) {
      this.pending.push(p);
      this.pendingLen += p.length;
    }
    while (this.next < this.frames.length) {
      const f = this.frames[this.next]!;
      while (this.pending.length > 0 && this.plainPos + this.pending[0]!.length <= f.offset) {
        const dropped = this.pending.shift()!;
        this.plainPos += dropped.length;
        this.pendingLen -= dropped.length;
      }
      if (this.plainPos + this.pendingLen < f.offset + f.length) break;
      const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
      const at = f.offset - this.plainPos;
      this.next++;
      const keepFrom = Math.max(0, Math.min(f.offset + f.length, (this.frames[this.next] ?? f).offset) - this.plainPos);
      this.pending = [all.subarray(keepFrom)];
      this.pendingLen = this.pending[0]!.length;
      this.plainPos += keepFrom;
      yield { frame: f, bytes: all.subarray(at, at + f.length) };
    }
    if (this.next >= this.frames.length) {
      this.plainPos += this.pendingLen;
      this.pending = [];
      this.pendingLen = 0;
    }
  }
}

/** After a whole blob: its SHA-256 must be its name, and every wanted frame must have come. */
function verifyBlob(hash: Hash, blob: string, object: string, cutter: FrameCutter<{ offset: number; length: number }>): void {
  if (hash.digest("hex") !== blob) {
    throw new IntegrityError(object, "blob content does not match its name (SHA-256 mismatch)");
  }
  const missing = cutter.missing;
  if (missing) throw new IntegrityError(object, `blob ends before chunk at offset ${missing.offset}`);
}

/**
 * The other end of forwardBlob: a whole blob's bytes in, its wanted frames out, as the stream
 * read of BlobReader.streamFrames gives them, with the same checks and messages. A segment that
 * does not verify throws from push (frames it held are lost, those cut before are good);
 * `verify` after `finish` checks the blob against its name and that every frame came.
 */
export class SealedFrames<F extends { offset: number; length: number }> {
  private readonly hash = createHash("sha256");
  private readonly opener: StreamOpener;
  private readonly cutter: FrameCutter<F>;
  /** Header bytes still to come before the payload. */
  private skip: number;

  constructor(
    private readonly blob: string,
    private readonly object: string,
    start: SealedStart,
    frames: readonly F[],
  ) {
    this.opener = new StreamOpener(Buffer.from(start.payloadKey), object);
    this.skip = start.payloadOffset;
    this.cutter = new FrameCutter(frames);
  }

  push(part: Uint8Array): CutFrame<F>[] {
    this.hash.update(part);
    const n = Math.min(this.skip, part.length);
    this.skip -= n;
    return n === part.length ? [] : [...this.cutter.take(this.opener.push(part.subarray(n)))];
  }

  finish(): CutFrame<F>[] {
    if (this.skip > 0) throw new IntegrityError(this.object, "age file truncated inside its header");
    return [...this.cutter.take([this.opener.finish()])];
  }

  verify(): void {
    verifyBlob(this.hash, this.blob, this.object, this.cutter);
  }
}

/** A zstd frame wanted from a blob's plaintext, with the wanted chunks it holds (none: the caller keeps them). */
export interface Frame {
  offset: number;
  length: number;
  chunks: readonly ChunkLocation[];
}

/** A wanted frame that could not be read: its segments failed, or the range read did. */
export interface DamagedFrame {
  offset: number;
  chunks: readonly ChunkLocation[];
  error: Error;
}

/** A zstd frame of a blob, compressed, and the wanted chunks it holds. */
export interface WantedFrame {
  /** Offset in the blob's plaintext. */
  offset: number;
  frame: Buffer;
  chunks: readonly ChunkLocation[];
}

/**
 * About how many ciphertext bytes rangedFrames() fetches for `frames` (in offset order) of a blob
 * of `blobSize` bytes: the header probe and each span of segments (`restore --dry-run`, which
 * reads nothing, says this much). The header's exact length is not known without reading it.
 */
export function rangedReadBytes(blobSize: number, frames: readonly Frame[]): number {
  let bytes = 0;
  for (const span of spansOf(frames)) bytes += (span.last - span.first + 1) * SEALED_SEGMENT_SIZE;
  return Math.min(blobSize, HEADER_PROBE + bytes);
}

/** Groups chunks by the frame that holds them, in offset order. */
function framesOf(chunks: readonly ChunkLocation[]): Frame[] {
  const sorted = [...chunks].sort((a, b) => a.offset - b.offset || a.rawOffset - b.rawOffset);
  const frames: { offset: number; length: number; chunks: ChunkLocation[] }[] = [];
  for (const loc of sorted) {
    const last = frames[frames.length - 1];
    if (last?.offset === loc.offset) last.chunks.push(loc);
    else frames.push({ offset: loc.offset, length: loc.length, chunks: [loc] });
  }
  return frames;
}

interface Span {
  /** First and last STREAM segment the span's frames lie in. */
  first: number;
  last: number;
  frames: Frame[];
}

/** Groups frames (in offset order) into runs of adjacent segments: one ranged GET each, no byte fetched twice or in vain. */
function spansOf(frames: readonly Frame[]): Span[] {
  const spans: Span[] = [];
  for (const f of frames) {
    const s = segmentSpan(f.offset, f.length);
    const last = spans[spans.length - 1];
    const lastSegment = Math.max(last?.last ?? 0, s.lastSegment);
    if (last && s.firstSegment <= last.last + 1 && (lastSegment - last.first + 1) * SEALED_SEGMENT_SIZE <= SPAN_MAX) {
      last.last = lastSegment;
      last.frames.push(f);
    } else {
      spans.push({ first: s.firstSegment, last: s.lastSegment, frames: [f] });
    }
  }
  return spans;
}
