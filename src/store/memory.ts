import { Readable } from "node:stream";
import { NotFoundError, StoreError } from "../errors.js";
import { readAll } from "./bytes.js";
import { checkKey } from "./keys.js";
import { isStreamBody } from "./store.js";
import type { CallOptions, GetOptions, ObjectInfo, PutBody, PutOptions, Store } from "./store.js";

export interface MemoryObject {
  bytes: Buffer;
  mtime: Date;
}

/** The map is exposed so tests can corrupt or inspect stored bytes directly. */
export interface MemoryStore extends Store {
  readonly objects: Map<string, MemoryObject>;
}

let counter = 0;

/**
 * A Store held in a Map, for tests of the layers above. It keeps the same contract as the real
 * drivers (it passes test/store-contract.ts), so a test that passes here means something.
 */
export function openMemoryStore(name = `memory-${++counter}`): MemoryStore {
  const location = `memory:${name}`;
  const objects = new Map<string, MemoryObject>();

  function entry(key: string): MemoryObject {
    const found = objects.get(key);
    if (!found) throw new NotFoundError(`${location} ${key}`);
    return found;
  }

  return {
    location,
    objects,

    async put(key: string, body: PutBody, options: PutOptions = {}): Promise<boolean> {
      options.signal?.throwIfAborted();
      checkKey(location, key);
      if (objects.has(key)) return false;
      // Copy: the caller may reuse its buffer, and a real store would not see that either.
      const bytes = isStreamBody(body) ? await readAll(body.open()) : Buffer.from(body);
      if (isStreamBody(body) && bytes.byteLength !== body.size) {
        throw new StoreError(location, key, `body yielded ${bytes.byteLength} bytes, declared ${body.size}`);
      }
      options.signal?.throwIfAborted();
      // Re-check: another put may have finished while this body was being read.
      if (objects.has(key)) return false;
      objects.set(key, { bytes, mtime: new Date() });
      return true;
    },

    async get(key: string, options: GetOptions = {}): Promise<Readable> {
      options.signal?.throwIfAborted();
      checkKey(location, key);
      const { bytes } = entry(key);
      const range = options.range;
      if (range && !(range.offset >= 0 && range.length >= 0)) {
        throw new StoreError(location, key, `invalid range ${range.offset}+${range.length}`);
      }
      const slice = range ? bytes.subarray(range.offset, range.offset + range.length) : bytes;
      // A copy, so a consumer that scribbles on its chunks cannot change what is stored.
      return Readable.from(slice.byteLength === 0 ? [] : [Buffer.from(slice)]);
    },

    async stat(key: string, options: CallOptions = {}): Promise<ObjectInfo> {
      options.signal?.throwIfAborted();
      checkKey(location, key);
      const { bytes, mtime } = entry(key);
      return { key, size: bytes.byteLength, mtime };
    },

    async *list(prefix: string, options: CallOptions = {}): AsyncGenerator<ObjectInfo> {
      options.signal?.throwIfAborted();
      if (prefix !== "") checkKey(location, `${prefix}_`);
      // Snapshot the keys so deletes during iteration behave like on a real store.
      for (const [key, { bytes, mtime }] of [...objects]) {
        if (key.startsWith(prefix)) yield { key, size: bytes.byteLength, mtime };
      }
    },

    async delete(key: string, options: CallOptions = {}): Promise<void> {
      options.signal?.throwIfAborted();
      checkKey(location, key);
      objects.delete(key);
    },
  };
}
