import type { Readable } from "node:stream";
import type { ByteRange, CallOptions, Store } from "./store.js";

/** Collects a stream into one Buffer. Only for objects known to be small (headers, ranges). */
export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/** Reads a whole object, or a range of it, into memory. */
export async function getBytes(
  store: Store,
  key: string,
  options: CallOptions & { range?: ByteRange } = {},
): Promise<Buffer> {
  return readAll(await store.get(key, options));
}
