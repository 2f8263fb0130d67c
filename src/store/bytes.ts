import type { Readable } from "node:stream";
import type { ByteRange, CallOptions, Store } from "./store.js";

/** The part of a Store that reading needs. */
export type ReadableStore = Pick<Store, "get" | "location">;

/** Collects a stream into one Buffer. Only for objects known to be small (headers, ranges). */
export async function readAll(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/** Reads a whole object, or a range of it, into memory. */
export async function getBytes(
  store: ReadableStore,
  key: string,
  options: CallOptions & { range?: ByteRange } = {},
): Promise<Buffer> {
  return readAll(await store.get(key, options));
}
