import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { isStreamBody } from "./store.js";
import type { PutBody, PutOptions, Store, StreamBody } from "./store.js";

// The upload bandwidth limit (`limit_upload`), as a wrapper around any Store so that drivers
// stay unaware of it. All puts through one wrapper share one budget: the limit is for the
// user's uplink, not per connection.

/** Pieces are never metered finer than this, so a slow limit does not mean a timer per byte. */
const MIN_SLICE = 16 * 1024;

/**
 * A Store whose `put` bodies flow at no more than `bytesPerSecond` in total, however many puts
 * run at once. Everything else goes straight to `store`.
 */
export function limitUploads(store: Store, bytesPerSecond: number): Store {
  if (!(Number.isFinite(bytesPerSecond) && bytesPerSecond > 0)) {
    throw new RangeError(`upload limit must be a positive number of bytes per second, got ${bytesPerSecond}`);
  }
  const bucket = new TokenBucket(bytesPerSecond);
  // About ten metering steps a second keeps the flow smooth without a timer per small piece.
  const slice = Math.max(MIN_SLICE, Math.floor(bytesPerSecond / 10));

  function throttledBody(body: PutBody, options: PutOptions): StreamBody {
    // Bytes become a stream too, so they are metered the same way. Each open() starts a fresh
    // stream over the same source, which is what a retrying driver needs.
    const open: () => Readable = isStreamBody(body)
      ? () => body.open()
      : () => Readable.from(body.byteLength === 0 ? [] : [Buffer.from(body.buffer, body.byteOffset, body.byteLength)]);
    return {
      size: isStreamBody(body) ? body.size : body.byteLength,
      open: () => throttle(open(), bucket, slice, options.signal),
    };
  }

  return {
    location: store.location,
    put: (key, body, options = {}) => store.put(key, throttledBody(body, options), options),
    get: (key, options) => store.get(key, options),
    stat: (key, options) => store.stat(key, options),
    list: (prefix, options) => store.list(prefix, options),
    delete: (key, options) => store.delete(key, options),
  };
}

/**
 * Bytes of budget accrue at `rate` per second up to one second's worth. A taker reserves its
 * bytes at once, going into debt if need be, and sleeps until the debt is paid off: reserving
 * first serves concurrent takers in arrival order, and each one's wait accounts for those ahead.
 */
class TokenBucket {
  /**
   * Starts empty: a new wrapper has not been idle, so it grants no burst, and the limit holds
   * from the first byte (a daemon that restarts does not get a fresh second of burst each time).
   */
  private tokens = 0;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly capacity = rate,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.last = now();
  }

  async take(bytes: number, signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    const t = this.now();
    this.tokens = Math.min(this.capacity, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
    this.tokens -= bytes;
    if (this.tokens >= 0) return;
    try {
      await sleep((-this.tokens / this.rate) * 1000, undefined, { signal });
    } catch (err) {
      // These bytes will not be sent: give them back so the takers behind need not wait for them.
      this.tokens += bytes;
      throw err;
    }
  }
}

/**
 * `source` passed on at the bucket's pace, in pieces of at most `slice` bytes. Destroying the
 * result (a failed or aborted upload) destroys `source` and stops waiting for budget at once.
 */
function throttle(source: Readable, bucket: TokenBucket, slice: number, signal: AbortSignal | undefined): Readable {
  // Aborted by destroy(), so a pump sleeping in the bucket wakes up instead of finishing its nap.
  const stop = new AbortController();
  const pieces = source[Symbol.asyncIterator]() as AsyncIterator<Uint8Array>;
  let rest: Buffer = Buffer.alloc(0);
  let pumping = false;

  const out = new Readable({
    read() {
      void pump();
    },
    destroy(err, callback) {
      stop.abort(err ?? new Error("upload stream closed"));
      signal?.removeEventListener("abort", onAbort);
      source.destroy();
      callback(err);
    },
  });
  const onAbort = (): void => {
    out.destroy(signal?.reason instanceof Error ? signal.reason : new Error("upload aborted", { cause: signal?.reason }));
  };
  if (signal?.aborted) onAbort();
  else signal?.addEventListener("abort", onAbort, { once: true });

  // Moves pieces until the consumer's buffer is full (push returns false); Readable calls read()
  // again when it wants more. `pumping` keeps a read() during a sleep from starting a second loop.
  async function pump(): Promise<void> {
    if (pumping) return;
    pumping = true;
    try {
      for (;;) {
        if (rest.byteLength === 0) {
          const next = await pieces.next();
          if (next.done) {
            signal?.removeEventListener("abort", onAbort);
            out.push(null);
            return;
          }
          const v = next.value;
          rest = Buffer.isBuffer(v) ? v : Buffer.from(v.buffer, v.byteOffset, v.byteLength);
          continue;
        }
        const piece = rest.subarray(0, slice);
        rest = rest.subarray(piece.byteLength);
        await bucket.take(piece.byteLength, stop.signal);
        if (out.destroyed) return;
        if (!out.push(piece)) return;
      }
    } catch (err) {
      out.destroy(err instanceof Error ? err : new Error(String(err)));
    } finally {
      pumping = false;
    }
  }

  return out;
}
