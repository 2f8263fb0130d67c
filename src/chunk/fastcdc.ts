import { get_chunks } from "fastcdc-wasm";
import { MAX_CHUNK_SIZE } from "../model/chunk.js";

// Content-defined chunking with FastCDC (fastcdc-wasm wraps the fastcdc 1.0.5 crate, the 2016
// algorithm). The wasm call copies its whole input into wasm memory and back, so we call it on
// large windows rather than on each read, and wasm memory never shrinks, so we never hand it
// more than one window: memory stays O(window + max) whatever the file size.
//
// Streaming gives the same boundaries as chunking the whole input at once because FastCDC
// finds each cut by scanning forward from the chunk's start, so a cut found inside a window is a
// cut of the whole input too: every chunk but a window's last is final. The last may have been
// cut only because the window ended, so it is carried over and chunked again with what follows.

export interface ChunkerParams {
  min: number;
  avg: number;
  max: number;
}

export interface ChunkStreamOptions {
  /**
   * New bytes gathered before each FastCDC call. Default `max(4 MiB, 2 * max)`. Smaller values
   * are correct but slower (each call re-reads the carried chunk); tests use them to exercise
   * the carry-over on small inputs.
   */
  windowSize?: number;
  /**
   * Scratch space to work in, at least `max + windowSize` bytes, reused across calls by a caller
   * that chunks one stream after another: allocating and dropping megabytes per file fragments
   * the allocator until the process holds hundreds of MiB it does not use.
   */
  scratch?: Buffer;
}

// Limits of the fastcdc crate; outside them the wasm traps with a bare "unreachable".
const MIN_MIN = 64;
const AVG_MIN = 256;
const MAX_MIN = 1024;
// Our own cap, far below the crate's 1 GiB: the window is 4 * max, and a backup tool holding
// gigabytes per file in flight would not be bounded in any useful sense.
const MAX_MAX = MAX_CHUNK_SIZE;

/** Smallest and largest accepted `chunk_size`. */
export const CHUNK_SIZE_MIN = AVG_MIN;
export const CHUNK_SIZE_MAX = MAX_MAX / 4;

const DEFAULT_WINDOW = 4 * 1024 * 1024;
const INITIAL_BUFFER = 64 * 1024;
const WINDOW_LIMIT = 1024 * 1024 * 1024;

/**
 * FastCDC parameters from the config's `chunk_size` (the target average chunk size, in bytes):
 *
 *   avg = chunk_size, min = floor(chunk_size / 4), max = chunk_size * 4
 *
 * `chunk_size` must be an integer in [256, 16777216] (256 B .. 16 MiB); the lower bound is the
 * smallest average fastcdc accepts (it also makes min >= 64 and max >= 1024, its other floors),
 * the upper bound keeps max at 64 MiB so a streaming window stays at most 256 MiB. No power of
 * two is required. Changing this rule changes every chunk boundary, so dedup against existing
 * repositories breaks: treat it as part of the repository format.
 *
 * @throws RangeError naming `chunk_size` when it is out of range or not an integer.
 */
export function chunkerParams(chunkSize: number): ChunkerParams {
  if (!Number.isSafeInteger(chunkSize) || chunkSize < CHUNK_SIZE_MIN || chunkSize > CHUNK_SIZE_MAX) {
    throw new RangeError(
      `chunk_size must be an integer from ${CHUNK_SIZE_MIN} to ${CHUNK_SIZE_MAX} bytes, got ${String(chunkSize)}`,
    );
  }
  return { min: Math.floor(chunkSize / 4), avg: chunkSize, max: chunkSize * 4 };
}

/** Throws a RangeError for parameters the wasm would trap on or that break our memory bound. */
function checkParams({ min, avg, max }: ChunkerParams): void {
  const ok =
    [min, avg, max].every(Number.isSafeInteger) &&
    min >= MIN_MIN &&
    avg >= AVG_MIN &&
    max >= MAX_MIN &&
    min <= avg &&
    avg <= max &&
    max <= MAX_MAX;
  if (!ok) {
    throw new RangeError(
      `invalid FastCDC parameters min=${min} avg=${avg} max=${max}: need integers with ` +
        `${MIN_MIN} <= min <= avg <= max <= ${MAX_MAX}, avg >= ${AVG_MIN}, max >= ${MAX_MIN}`,
    );
  }
}

/**
 * Chunk boundaries of `bytes`: starts of every chunk followed by `bytes.length`, so chunk i is
 * [b[i], b[i+1]). Empty input gives [0], i.e. no chunks.
 */
function boundaries(bytes: Uint8Array, { min, avg, max }: ChunkerParams): Uint32Array {
  // get_chunks writes its (unchanged) copy back into `bytes` when it returns.
  const cuts = get_chunks(bytes, min, avg, max);
  // The wrapper appends the end offset itself; stay correct should a version return starts only.
  if (cuts[cuts.length - 1] === bytes.length) return cuts;
  const withEnd = new Uint32Array(cuts.length + 1);
  withEnd.set(cuts);
  withEnd[cuts.length] = bytes.length;
  return withEnd;
}

/**
 * Chunks a whole buffer in one FastCDC call. The returned Buffers are views of `data`, not
 * copies. Meant for small inputs and as the reference in tests: wasm memory grows to the
 * size of `data` and stays there, so stream anything large through `chunkStream`.
 */
export function chunkBuffer(data: Uint8Array, params: ChunkerParams): Buffer[] {
  checkParams(params);
  const b = boundaries(data, params);
  const chunks: Buffer[] = [];
  for (let i = 0; i + 1 < b.length; i++) {
    chunks.push(Buffer.from(data.buffer, data.byteOffset + b[i]!, b[i + 1]! - b[i]!));
  }
  return chunks;
}

/**
 * Chunks a byte stream. Boundaries are identical to `chunkBuffer` on the concatenated input,
 * whatever the sizes of the pieces `source` yields. Each yielded Buffer is a fresh copy that the
 * consumer may keep; the pieces of `source` are copied on arrival, so the source may reuse its
 * buffers. Holds one window (`windowSize` + `max` bytes) plus one wasm copy of it. Stop
 * iterating to cancel; the source is then closed.
 */
export async function* chunkStream(
  source: AsyncIterable<Uint8Array>,
  params: ChunkerParams,
  options: ChunkStreamOptions = {},
): AsyncGenerator<Buffer> {
  checkParams(params);
  const windowSize = options.windowSize ?? Math.max(DEFAULT_WINDOW, 2 * params.max);
  if (!Number.isSafeInteger(windowSize) || windowSize < 1 || windowSize > WINDOW_LIMIT) {
    throw new RangeError(`windowSize must be an integer from 1 to ${WINDOW_LIMIT}, got ${windowSize}`);
  }

  // The carried chunk is at most `max` bytes (FastCDC cuts there), so after moving it to the
  // front there is always room for a full window of new bytes. The buffer is reused across
  // windows, which is why chunks leave it as copies. It starts small and doubles up to its full
  // size as input keeps coming: most files are small, and allocating a full window for each
  // one would keep the garbage collector busy with megabytes per file.
  const capacity = params.max + windowSize;
  const scratch = options.scratch && options.scratch.length >= capacity ? options.scratch.subarray(0, capacity) : undefined;
  let work = scratch ?? Buffer.allocUnsafeSlow(Math.min(capacity, INITIAL_BUFFER));
  let filled = 0;

  // Emits the final chunks of work[0, filled) and moves the rest to the front, or, at the end
  // of input, emits everything.
  function* cut(end: boolean): Generator<Buffer> {
    const b = boundaries(work.subarray(0, filled), params);
    const emit = end ? b.length - 1 : b.length - 2;
    for (let i = 0; i < emit; i++) yield ownCopy(work.subarray(b[i]!, b[i + 1]!));
    const carry = end ? filled : b[emit]!;
    work.copyWithin(0, carry, filled);
    filled -= carry;
  }

  for await (const piece of source) {
    let offset = 0;
    while (offset < piece.length) {
      if (filled === work.length && work.length < capacity) {
        const grown = Buffer.allocUnsafeSlow(Math.min(capacity, Math.max(work.length * 2, filled + piece.length - offset)));
        work.copy(grown, 0, 0, filled);
        work = grown;
      }
      const n = Math.min(piece.length - offset, work.length - filled);
      work.set(piece.subarray(offset, offset + n), filled);
      filled += n;
      offset += n;
      if (filled === capacity) yield* cut(false);
    }
  }
  yield* cut(true);
}

/**
 * A copy in an ArrayBuffer of its own. Buffer.from would put small copies in Node's shared
 * 8 KiB pool, and a pooled chunk sent to another thread drags the whole slab along (structured
 * clone copies a view's entire buffer), and cannot be transferred.
 */
function ownCopy(bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafeSlow(bytes.length);
  out.set(bytes);
  return out;
}
