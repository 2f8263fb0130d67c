import { IntegrityError } from "../errors.js";
import { compressFrame, decompressBounded, DEFAULT_LEVEL } from "../pack/zstd.js";
import { advance, frameLabel, MAX_BLOCK_SIZE, newScan, type Where } from "../pack/zstd-frame.js";

// Streaming zstd for snapshot databases (blobs compress chunk by chunk, in pack/), on top of
// an addon that only has one-shot calls. The writer cuts the input into frames of at most
// `frameSize` raw bytes; concatenated frames are one valid zstd stream
// (RFC 8878 §3.1), so `zstd -d` reads our output. The reader parses just enough of the frame
// format (pack/zstd-frame.ts) to find where each frame ends and how much it can decode to, then
// decompresses frames one at a time. Memory stays bounded by a few frames either way, whatever
// the size of the whole object.

export const DEFAULT_FRAME_SIZE = 1024 * 1024;
/**
 * Keeps every frame we write under the reader's default limits. The reader holds a few frames at
 * once (one being cut, two decoding, one being written), in and out, so these limits are what
 * bounds its memory on a crafted object: about 5 × 8 MiB.
 */
export const MAX_FRAME_SIZE = 8 * 1024 * 1024;
/**
 * The most one frame may decompress to by default: our largest frame, plus the unused room of
 * its last compressed block (a bound counts every compressed block as a full one).
 */
export const DEFAULT_MAX_FRAME_OUTPUT = MAX_FRAME_SIZE + MAX_BLOCK_SIZE;
/** Our frames never compress to more than they hold, plus 3 bytes per 128 KiB raw block. */
export const DEFAULT_MAX_FRAME_SIZE = DEFAULT_MAX_FRAME_OUTPUT;

const MIN_LEVEL = -(1 << 17);
const MAX_LEVEL = 22;
/** The addon runs on the libuv pool; two frames at once overlap work without hoarding threads. */
const CONCURRENCY = 2;

export interface CompressStreamOptions {
  /** zstd level, from -131072 (fastest) to 22; default 3. */
  level?: number;
  /** Raw bytes per frame, 1 B to 8 MiB; default 1 MiB. */
  frameSize?: number;
  signal?: AbortSignal;
}

export interface DecompressStreamOptions {
  /** Largest compressed frame accepted; default 8 MiB + 128 KiB. Skippable frames are never buffered. */
  maxFrameSize?: number;
  /**
   * Largest output a frame may be able to decode to, judged from its headers before it is
   * decompressed (default 8 MiB + 128 KiB). A frame is decompressed whole, in memory.
   */
  maxFrameOutput?: number;
  signal?: AbortSignal;
  /** Called with the compressed bytes the splitter holds whenever that grows (for tests). */
  onBuffered?: (bytes: number) => void;
}

/** Compresses `source` into a zstd stream of independent frames, yielded one per frame. */
export async function* compressStream(
  source: AsyncIterable<Uint8Array>,
  options: CompressStreamOptions = {},
): AsyncGenerator<Buffer> {
  const { level = DEFAULT_LEVEL, frameSize = DEFAULT_FRAME_SIZE, signal } = options;
  if (!Number.isInteger(level) || level < MIN_LEVEL || level > MAX_LEVEL) {
    throw new RangeError(`level must be an integer from ${MIN_LEVEL} to ${MAX_LEVEL}, got ${level}`);
  }
  if (!Number.isInteger(frameSize) || frameSize < 1 || frameSize > MAX_FRAME_SIZE) {
    throw new RangeError(`frameSize must be an integer from 1 to ${MAX_FRAME_SIZE} bytes, got ${frameSize}`);
  }
  signal?.throwIfAborted();
  const queue = new OrderedQueue();
  // A fresh buffer per frame: the addon reads it on another thread while we fill the next one,
  // and copying also frees us from whether the source reuses its chunks.
  let pending: Buffer | undefined;
  let fill = 0;
  let frames = 0;

  for await (const chunk of source) {
    signal?.throwIfAborted();
    let off = 0;
    while (off < chunk.length) {
      pending ??= Buffer.allocUnsafe(frameSize);
      const n = Math.min(frameSize - fill, chunk.length - off);
      pending.set(chunk.subarray(off, off + n), fill);
      fill += n;
      off += n;
      if (fill === frameSize) {
        if (queue.length === CONCURRENCY) yield await queue.shift();
        signal?.throwIfAborted();
        queue.push(compressFrame(pending, level));
        frames++;
        pending = undefined;
        fill = 0;
      }
    }
  }
  // An empty input still gets one (empty) frame: a zero-byte file is not a valid zstd stream.
  if (fill > 0 || frames === 0) {
    if (queue.length === CONCURRENCY) yield await queue.shift();
    queue.push(compressFrame((pending ?? Buffer.alloc(0)).subarray(0, fill), level));
  }
  while (queue.length > 0) {
    signal?.throwIfAborted();
    yield await queue.shift();
  }
}

/**
 * Decompresses a zstd stream of any number of frames (ours or the `zstd` CLI's), reading
 * `source` incrementally. Throws IntegrityError naming `object` on truncated, malformed or
 * oversized input, including a frame whose blocks could decode to more than `maxFrameOutput`
 * (refused before it is decompressed). Each frame's output is held whole, so that bounds memory.
 */
export async function* decompressStream(
  source: AsyncIterable<Uint8Array>,
  object: string,
  options: DecompressStreamOptions = {},
): AsyncGenerator<Buffer> {
  const { maxFrameSize = DEFAULT_MAX_FRAME_SIZE, maxFrameOutput = DEFAULT_MAX_FRAME_OUTPUT, signal, onBuffered } = options;
  for (const [name, value] of [["maxFrameSize", maxFrameSize], ["maxFrameOutput", maxFrameOutput]] as const) {
    if (!Number.isInteger(value) || value < 1) throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
  signal?.throwIfAborted();
  const splitter = new FrameSplitter(object, { maxFrameSize, maxFrameOutput }, onBuffered);
  const queue = new OrderedQueue();

  // On malformed input we first hand out what the frames before it decoded to, so the error a
  // caller sees is always the earliest problem in the stream.
  async function* fail(err: unknown): AsyncGenerator<Buffer, never> {
    while (queue.length > 0) {
      const out = await queue.shift();
      if (out.length > 0) yield out;
    }
    throw err;
  }

  for await (const chunk of source) {
    signal?.throwIfAborted();
    let frames: Frame[];
    try {
      frames = splitter.push(chunk);
    } catch (err) {
      return yield* fail(err);
    }
    for (const frame of frames) {
      if (queue.length === CONCURRENCY) {
        const out = await queue.shift();
        if (out.length > 0) yield out;
        signal?.throwIfAborted();
      }
      queue.push(decompressOne(frame, object));
    }
  }
  try {
    splitter.finish();
  } catch (err) {
    return yield* fail(err);
  }
  while (queue.length > 0) {
    signal?.throwIfAborted();
    const out = await queue.shift();
    if (out.length > 0) yield out;
  }
}

interface Frame {
  bytes: Buffer;
  index: number;
  origin: number;
  /** The most its blocks can decode to. */
  bound: number;
}

function decompressOne(frame: Frame, object: string): Promise<Buffer> {
  return decompressBounded(frame.bytes, frame.bound, object, frameLabel(frame.index, frame.origin));
}

/**
 * Cuts a byte stream into frames. Holds at most the one frame being assembled: it copies only
 * as many bytes as the parse needs next, so a byte is copied once and each frame comes out as
 * an exact buffer of its own. Skippable frames are counted through, never buffered.
 */
class FrameSplitter {
  private buf = Buffer.alloc(0);
  private held = 0;
  private scan = newScan();
  /** Stream offset of the frame being assembled. */
  private origin = 0;
  private index = 0;
  /** Bytes of a skippable frame still to pass over. */
  private skip = 0;
  /** Frames of one stream tend to be alike in size, so the next buffer starts at the last size. */
  private sizeHint = 64 * 1024;

  constructor(
    private readonly object: string,
    private readonly limits: { maxFrameSize: number; maxFrameOutput: number },
    private readonly onBuffered: ((bytes: number) => void) | undefined,
  ) {}

  push(data: Uint8Array): Frame[] {
    const frames: Frame[] = [];
    let off = 0;
    // Settles the parse before looking at `off`, so a frame whose last byte ends `data` is
    // emitted now rather than mistaken for a truncated one at the end of input.
    for (;;) {
      if (this.skip > 0) {
        if (off === data.length) break;
        const n = Math.min(this.skip, data.length - off);
        this.skip -= n;
        off += n;
        if (this.skip === 0) this.next(this.origin + this.scan.length);
        continue;
      }
      const need = advance(this.scan, this.buf.subarray(0, this.held), this.where());
      if (this.scan.phase === "done" && this.scan.skippable) {
        this.skip = this.scan.length - this.held;
        this.held = 0;
        if (this.skip === 0) this.next(this.origin + this.scan.length);
        continue;
      }
      if (need > this.limits.maxFrameSize) {
        throw new IntegrityError(
          this.object,
          `${frameLabel(this.index, this.origin)} is larger than the ${this.limits.maxFrameSize}-byte frame limit`,
        );
      }
      // Checked as each block header is read, so a bomb is refused before it is even buffered.
      if (this.scan.bound > this.limits.maxFrameOutput) {
        throw new IntegrityError(
          this.object,
          `${frameLabel(this.index, this.origin)} can decompress to more than the ${this.limits.maxFrameOutput}-byte frame output limit (its blocks declare at least ${this.scan.bound} bytes)`,
        );
      }
      if (this.scan.phase === "done" && this.held === need) {
        frames.push({ bytes: this.buf.subarray(0, need), index: this.index, origin: this.origin, bound: this.scan.bound });
        this.sizeHint = need;
        this.buf = Buffer.alloc(0);
        this.next(this.origin + need);
        continue;
      }
      if (off === data.length) break;
      const n = Math.min(need - this.held, data.length - off);
      this.reserve(need);
      this.buf.set(data.subarray(off, off + n), this.held);
      this.held += n;
      off += n;
      this.onBuffered?.(this.held);
    }
    return frames;
  }

  /** Throws unless the input ended on a frame boundary after at least one frame. */
  finish(): void {
    if (this.held > 0 || this.skip > 0) {
      throw new IntegrityError(this.object, `zstd stream truncated inside frame ${this.index} (at byte ${this.origin})`);
    }
    // `zstd -d` rejects an empty file too; for us it most likely means a lost object body.
    if (this.index === 0) throw new IntegrityError(this.object, "zstd stream is empty");
  }

  private where(): Where {
    return { object: this.object, origin: this.origin, index: this.index };
  }

  private next(origin: number): void {
    this.origin = origin;
    this.index++;
    this.held = 0;
    this.scan = newScan();
  }

  /** Grows the buffer to hold `need` bytes, at least doubling so regrowth stays linear. */
  private reserve(need: number): void {
    if (need <= this.buf.length) return;
    const size = Math.min(this.limits.maxFrameSize, Math.max(need, this.sizeHint, this.buf.length * 2));
    const grown = Buffer.allocUnsafe(size);
    this.buf.copy(grown, 0, 0, this.held);
    this.buf = grown;
  }
}

/** Promises kept in start order; failures are marked handled until their turn to be awaited. */
class OrderedQueue {
  private readonly items: Promise<Buffer>[] = [];

  get length(): number {
    return this.items.length;
  }

  push(p: Promise<Buffer>): void {
    // Without this, a later frame failing while we await an earlier one (or after the consumer
    // stopped early) would be reported as an unhandled rejection.
    p.catch(() => {});
    this.items.push(p);
  }

  shift(): Promise<Buffer> {
    const p = this.items.shift();
    if (p === undefined) throw new Error("OrderedQueue: shift on empty queue");
    return p;
  }
}
