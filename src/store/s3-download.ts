import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { messageOf } from "./errors.js";
import type { RetryBudget } from "./s3-retry.js";

// A download that survives its body breaking off. The SDK retries a request until its headers
// arrive; after that the body is ours to read, and a reset, an idle timeout or a connection
// closed short of Content-Length used to fail the whole get. Here the bytes still missing are
// asked for again, as a range, of the same object version only (If-Match on the ETag, checked
// again on the answer for servers that ignore If-Match), so a replaced object is never spliced.

/** One answer to a GET: its body and where in the object that body starts. */
export interface Part {
  body: Readable;
  /** Offset in the object of the body's first byte (from Content-Range; 0 without one). */
  start: number;
  /** Bytes the answer promised (Content-Length); undefined when it did not say. */
  length: number | undefined;
  etag: string | undefined;
}

export interface Resumption {
  /** Asks for bytes [from, to) again (to undefined: to the end), of version `etag`. */
  fetch(from: number, to: number | undefined, etag: string | undefined): Promise<Part>;
  budget: RetryBudget;
  signal: AbortSignal | undefined;
  /** The error to report when the budget is spent, from the last failure. */
  fail(cause: unknown): Error;
}

/**
 * The bytes [from, from + take) of the object whose first answer is `first`, as a stream;
 * `take` Infinity means up to the end the answer promised. An answer that holds more than was
 * asked (a server that ignores Range) is trimmed.
 */
export function resumable(first: Part, from: number, take: number, how: Resumption): Readable {
  const promised = first.length === undefined ? Infinity : first.start + first.length;
  const end = Math.min(from + take, promised);
  const etag = first.etag;
  let pos = from;
  let body: Readable | undefined;
  let finished = false;

  const out = new Readable({
    read() {
      body?.resume();
    },
    destroy(err, callback) {
      finished = true;
      body?.destroy();
      callback(err);
    },
  });

  function finish(err?: unknown): void {
    if (finished) return;
    finished = true;
    body?.destroy();
    if (err === undefined) out.push(null);
    else out.destroy(err instanceof Error ? err : new Error(String(err)));
  }

  function attach(part: Part): void {
    const source = (body = part.body);
    let offset = part.start;
    let settled = false;
    source.on("data", (chunk: Buffer) => {
      if (finished || source !== body) return;
      const lo = Math.max(pos, offset);
      const hi = Math.min(end, offset + chunk.byteLength);
      offset += chunk.byteLength;
      if (lo < hi) {
        pos = hi;
        if (!out.push(chunk.subarray(lo - (offset - chunk.byteLength), hi - (offset - chunk.byteLength)))) source.pause();
      }
      if (pos >= end) finish();
    });
    const settle = (err: unknown) => {
      if (settled || finished) return;
      settled = true;
      // An answer without a Content-Length that ends cleanly ends the object.
      if (pos >= end || (err === undefined && end === Infinity)) return finish();
      resume(brokenOff(pos - from, end - from, err)).catch((err: unknown) => finish(how.signal?.aborted ? how.signal.reason : err));
    };
    source.once("end", () => settle(undefined));
    source.once("error", settle);
    source.once("close", () => settle(new Error("connection closed")));
  }

  async function resume(cause: unknown): Promise<void> {
    if (how.signal?.aborted) throw how.signal.reason;
    const delay = how.budget.nextDelay();
    if (delay === undefined) throw how.fail(cause);
    await sleep(delay, undefined, { signal: how.signal });
    if (finished) return;
    const part = await how.fetch(pos, end === Infinity ? undefined : end, etag);
    if (finished) {
      part.body.destroy();
      return;
    }
    if (part.start > pos) {
      part.body.destroy();
      throw how.fail(new Error(`asked for bytes from ${pos}, the server answered from ${part.start}`));
    }
    attach(part);
  }

  attach(first);
  return out;
}

/** Why a body stopped short, said as such: "cannot reach" the endpoint would mislead. */
function brokenOff(got: number, wanted: number, err: unknown): Error {
  const size = wanted === Infinity ? "" : ` of ${wanted}`;
  const why = err === undefined ? "" : `: ${messageOf(err)}`;
  return Object.assign(new Error(`the answer broke off after ${got}${size} bytes${why}`, { cause: err }), { name: "IncompleteBody" });
}
