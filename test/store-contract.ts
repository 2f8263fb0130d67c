import { randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { NotFoundError, StoreError } from "../src/errors.js";
import { getBytes, readAll } from "../src/store/bytes.js";
import type { ObjectInfo, Store, StreamBody } from "../src/store/store.js";

/** Known deviations of a backend under test; each one says why it is tolerated. */
export interface StoreContractQuirks {
  /** s3rver answers a ranged GET of an empty object with a short body and a reset connection. */
  rangeOnEmptyObject?: boolean;
  /** Concurrent puts of one key: exactly one wins. Not where the server ignores If-None-Match. */
  exclusiveConcurrentPut?: boolean;
}

export interface StoreUnderTest {
  store: Store;
  cleanup(): Promise<void>;
}

const MiB = 1024 * 1024;

/** A StreamBody over `bytes`, in uneven chunks, counting how often it was opened. */
export function streamBody(bytes: Uint8Array, chunk = 64 * 1024 + 7): StreamBody & { opens: number } {
  const body = {
    size: bytes.byteLength,
    opens: 0,
    open(): Readable {
      body.opens++;
      return Readable.from(
        (function* () {
          for (let at = 0; at < bytes.byteLength; at += chunk) yield Buffer.from(bytes.subarray(at, at + chunk));
        })(),
      );
    },
  };
  return body;
}

/** A StreamBody that claims `size` but yields `bytes`. */
function lyingBody(bytes: Uint8Array, size: number): StreamBody {
  return { size, open: () => Readable.from([Buffer.from(bytes)]) };
}

async function collect(iterable: AsyncIterable<ObjectInfo>): Promise<ObjectInfo[]> {
  const out: ObjectInfo[] = [];
  for await (const info of iterable) out.push(info);
  return out.sort((a, b) => (a.key < b.key ? -1 : 1));
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error("expected a rejection");
}

/** Declares the tests every Store driver must pass; `makeStore` gives each test an empty store. */
export function describeStoreContract(
  name: string,
  makeStore: () => Promise<StoreUnderTest>,
  quirks: StoreContractQuirks = {},
): void {
  describe(`Store contract: ${name}`, () => {
    let store: Store;
    let cleanup: (() => Promise<void>) | undefined;

    beforeEach(async () => {
      ({ store, cleanup } = await makeStore());
    });
    afterEach(async () => {
      await cleanup?.();
    });

    it("round-trips bodies of 0 bytes, 1 byte and ~5 MiB, from bytes and from streams", async () => {
      for (const size of [0, 1, 5 * MiB + 123]) {
        const data = randomBytes(size);
        expect(await store.put(`objects/bytes-${size}`, new Uint8Array(data))).toBe(true);
        expect(await store.put(`objects/stream-${size}`, streamBody(data))).toBe(true);
        for (const key of [`objects/bytes-${size}`, `objects/stream-${size}`]) {
          const stream = await store.get(key);
          expect(stream).toBeInstanceOf(Readable);
          expect((await readAll(stream)).equals(data)).toBe(true);
          const info = await store.stat(key);
          expect(info.key).toBe(key);
          expect(info.size).toBe(size);
          expect(info.mtime).toBeInstanceOf(Date);
        }
      }
    });

    it("put of an existing key returns false and keeps the original bytes", async () => {
      const first = randomBytes(1000);
      expect(await store.put("blobs/aa/same", first)).toBe(true);
      expect(await store.put("blobs/aa/same", randomBytes(1000))).toBe(false);
      expect(await store.put("blobs/aa/same", streamBody(randomBytes(2000)))).toBe(false);
      expect(await store.put("blobs/aa/same", new Uint8Array(0))).toBe(false);
      expect((await getBytes(store, "blobs/aa/same")).equals(first)).toBe(true);
      expect((await store.stat("blobs/aa/same")).size).toBe(1000);
    });

    it("concurrent puts of one key leave one whole body", async () => {
      const data = randomBytes(256 * 1024);
      const results = await Promise.all([1, 2, 3, 4].map(() => store.put("blobs/race", streamBody(data))));
      const winners = results.filter(Boolean).length;
      if (quirks.exclusiveConcurrentPut === false) expect(winners).toBeGreaterThanOrEqual(1);
      else expect(winners).toBe(1);
      expect((await getBytes(store, "blobs/race")).equals(data)).toBe(true);
    });

    it("ranged get returns exactly the bytes [offset, offset + length) that exist", async () => {
      const data = randomBytes(300_001);
      await store.put("blobs/ranged", data);
      const n = data.byteLength;
      const ranges = [
        { offset: 0, length: 1 },
        { offset: 0, length: n },
        { offset: 1, length: 1 },
        { offset: 12_345, length: 65_536 },
        { offset: n - 1, length: 1 },
        { offset: n - 10, length: 100 }, // runs past the end
        { offset: 0, length: n + 1 },
        { offset: n, length: 10 }, // starts at the end
        { offset: n + 5, length: 10 }, // starts past the end
        { offset: 100, length: 0 },
      ];
      for (const range of ranges) {
        const got = await getBytes(store, "blobs/ranged", { range });
        const want = data.subarray(range.offset, range.offset + range.length);
        expect({ range, length: got.byteLength }).toEqual({ range, length: want.byteLength });
        expect(got.equals(want)).toBe(true);
      }
    });

    it("ranged get of an empty object yields nothing (or, on servers known to reset it, a StoreError)", async () => {
      await store.put("blobs/empty", new Uint8Array(0));
      const read = getBytes(store, "blobs/empty", { range: { offset: 0, length: 10 } });
      // s3rver drops the connection on this request; we never range-read empty objects, but a
      // failure must still be a typed StoreError, not a hang or wrong bytes.
      if (quirks.rangeOnEmptyObject === false) await expect(read).rejects.toBeInstanceOf(StoreError);
      else expect((await read).byteLength).toBe(0);
    });

    it("get and stat of a missing key reject with NotFoundError naming the store and key", async () => {
      const key = "blobs/zz/missing-key";
      for (const attempt of [
        () => store.get(key),
        () => store.get(key, { range: { offset: 0, length: 10 } }),
        () => store.get(key, { range: { offset: 5, length: 0 } }),
        () => store.stat(key),
      ]) {
        const err = await rejection(attempt());
        expect(err).toBeInstanceOf(NotFoundError);
        expect((err as Error).message).toContain(key);
        expect((err as Error).message).toContain(store.location);
      }
    });

    it("list(prefix) yields exactly the keys under the prefix, nested ones included, with sizes", async () => {
      const sizes: Record<string, number> = {
        "blobs/aa/bb/one": 1,
        "blobs/aa/cc/two": 22,
        "blobs/dd/three": 333,
        "blobsX/four": 4,
        "index/five": 5,
        config: 6,
      };
      for (const [key, size] of Object.entries(sizes)) await store.put(key, randomBytes(size));
      const keysOf = async (prefix: string) => (await collect(store.list(prefix))).map((info) => info.key);

      const blobs = await collect(store.list("blobs/"));
      expect(blobs.map((info) => [info.key, info.size])).toEqual([
        ["blobs/aa/bb/one", 1],
        ["blobs/aa/cc/two", 22],
        ["blobs/dd/three", 333],
      ]);
      for (const info of blobs) expect(info.mtime).toBeInstanceOf(Date);
      expect(await keysOf("")).toEqual(Object.keys(sizes).sort());
      // A prefix is a string prefix, as on S3, not a directory name.
      expect(await keysOf("blobs")).toEqual(["blobs/aa/bb/one", "blobs/aa/cc/two", "blobs/dd/three", "blobsX/four"]);
      expect(await keysOf("blobs/aa/b")).toEqual(["blobs/aa/bb/one"]);
      expect(await keysOf("blobs/aa/bb/one")).toEqual(["blobs/aa/bb/one"]);
      expect(await keysOf("conf")).toEqual(["config"]);
      expect(await keysOf("nothing/")).toEqual([]);
    });

    it("delete removes the object; deleting again or a missing key is fine; the key can be reused", async () => {
      await store.put("blobs/aa/bb/gone", randomBytes(10));
      await store.put("blobs/aa/kept", randomBytes(10));
      await store.delete("blobs/aa/bb/gone");
      await expect(store.stat("blobs/aa/bb/gone")).rejects.toBeInstanceOf(NotFoundError);
      await expect(store.get("blobs/aa/bb/gone")).rejects.toBeInstanceOf(NotFoundError);
      expect((await collect(store.list(""))).map((info) => info.key)).toEqual(["blobs/aa/kept"]);
      await store.delete("blobs/aa/bb/gone");
      await store.delete("never/existed");
      const again = randomBytes(20);
      expect(await store.put("blobs/aa/bb/gone", again)).toBe(true);
      expect((await getBytes(store, "blobs/aa/bb/gone")).equals(again)).toBe(true);
    });

    it("invalid keys and prefixes are rejected with StoreError", async () => {
      for (const key of ["../x", "/abs", "a//b", "", "a/./b", "a/../b", "trailing/", "back\\slash"]) {
        for (const attempt of [
          () => store.put(key, randomBytes(1)),
          () => store.get(key),
          () => store.stat(key),
          () => store.delete(key),
        ]) {
          const err = await rejection(attempt());
          expect(err, `key ${JSON.stringify(key)}`).toBeInstanceOf(StoreError);
        }
      }
      for (const prefix of ["../", "/abs", "a//"]) {
        expect(await rejection(collect(store.list(prefix)))).toBeInstanceOf(StoreError);
      }
    });

    it("a stream body that yields other than its declared size is rejected and not stored", async () => {
      const data = randomBytes(10_000);
      for (const [key, body] of [
        ["blobs/short", lyingBody(data, data.byteLength + 1)],
        ["blobs/long", lyingBody(data, data.byteLength - 1)],
      ] as const) {
        expect(await rejection(store.put(key, body))).toBeInstanceOf(StoreError);
        await expect(store.stat(key)).rejects.toBeInstanceOf(NotFoundError);
      }
    });

    it("an aborted signal stops every call", async () => {
      await store.put("blobs/there", randomBytes(10));
      const signal = AbortSignal.abort();
      for (const attempt of [
        () => store.put("blobs/new", randomBytes(10), { signal }),
        () => store.get("blobs/there", { signal }),
        () => store.stat("blobs/there", { signal }),
        () => store.delete("blobs/there", { signal }),
        () => collect(store.list("", { signal })),
      ]) {
        expect(await rejection(attempt())).toHaveProperty("name", "AbortError");
      }
      await expect(store.stat("blobs/new")).rejects.toBeInstanceOf(NotFoundError);
      expect((await store.stat("blobs/there")).size).toBe(10);
    });
  });
}
