import { createHash, randomBytes } from "node:crypto";
import { Readable } from "node:stream";
import { describe, expect, it } from "vitest";
import { readAll } from "../src/store/bytes.js";
import { limitUploads } from "../src/store/limit.js";
import { openMemoryStore } from "../src/store/memory.js";
import type { PutBody, StreamBody } from "../src/store/store.js";

const KiB = 1024;

function sha(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

describe("limitUploads", () => {
  it("holds concurrent puts to one shared rate and stores the bytes unchanged", async () => {
    const inner = openMemoryStore();
    const store = limitUploads(inner, 512 * KiB);
    const bodies = [randomBytes(256 * KiB), randomBytes(256 * KiB), randomBytes(256 * KiB)];
    const started = performance.now();
    const stored = await Promise.all(bodies.map((b, i) => store.put(`blobs/${i}`, b)));
    const elapsed = performance.now() - started;
    expect(stored).toEqual([true, true, true]);
    // 768 KiB at 512 KiB/s is 1.5 s with the shared bucket (0.5 s if each put had its own).
    // A lower bound only: sleeping cannot finish early, but a busy machine can be slow.
    expect(elapsed).toBeGreaterThanOrEqual(1_200);
    bodies.forEach((b, i) => expect(sha(inner.objects.get(`blobs/${i}`)!.bytes)).toBe(sha(b)));
  });

  it("gives a retrying driver a body it can open again, with the same bytes", async () => {
    const inner = openMemoryStore();
    const opened: Buffer[] = [];
    // The real store, with put replaced by one that reads the body twice as a retry would.
    const recording = {
      ...inner,
      async put(key: string, body: PutBody): Promise<boolean> {
        const stream = body as StreamBody;
        expect(typeof stream.open).toBe("function");
        opened.push(await readAll(stream.open()));
        opened.push(await readAll(stream.open()));
        expect(stream.size).toBe(opened[0]!.byteLength);
        return inner.put(key, body);
      },
    };
    const store = limitUploads(recording, 4 << 20);
    // A view into a larger buffer, to check the offset is honoured.
    const backing = randomBytes(200 * KiB);
    const body = backing.subarray(10 * KiB, 150 * KiB);
    await store.put("blobs/a", body);
    expect(opened.map(sha)).toEqual([sha(body), sha(body)]);
    expect(sha(inner.objects.get("blobs/a")!.bytes)).toBe(sha(body));
  });

  it("throttles stream bodies too, splitting large pieces", async () => {
    const inner = openMemoryStore();
    const store = limitUploads(inner, 4 << 20);
    const parts = [randomBytes(1), randomBytes(3 * KiB), randomBytes(1 << 20), randomBytes(17)];
    const whole = Buffer.concat(parts);
    let opens = 0;
    const body: StreamBody = {
      size: whole.byteLength,
      open: () => {
        opens++;
        return Readable.from(parts);
      },
    };
    const seen: number[] = [];
    // The real store, with put replaced by one that notes the sizes of the pieces it is given.
    const probe = {
      ...inner,
      async put(key: string, b: PutBody): Promise<boolean> {
        for await (const piece of (b as StreamBody).open()) seen.push((piece as Buffer).byteLength);
        return inner.put(key, b);
      },
    };
    await limitUploads(probe, 4 << 20).put("blobs/s", body);
    await store.put("blobs/t", body);
    expect(opens).toBe(3);
    // At 4 MiB/s a piece is metered in 400 KiB slices at most.
    expect(Math.max(...seen)).toBeLessThanOrEqual(Math.floor((4 << 20) / 10));
    expect(seen.reduce((a, b) => a + b, 0)).toBe(whole.byteLength);
    expect(sha(inner.objects.get("blobs/s")!.bytes)).toBe(sha(whole));
    expect(sha(inner.objects.get("blobs/t")!.bytes)).toBe(sha(whole));
  });

  it("an abort stops a put waiting for bandwidth", async () => {
    const inner = openMemoryStore();
    // 16 KiB/s: the 1 MiB body would take a minute.
    const ac = new AbortController();
    // Aborts once the driver is reading the body: its first piece waits a second for budget
    // (the bucket starts empty), and everything the read started has run by setImmediate.
    const reading = {
      ...inner,
      put(key: string, body: PutBody): Promise<boolean> {
        const put = inner.put(key, body);
        setImmediate(() => ac.abort(new Error("stop")));
        return put;
      },
    };
    const started = performance.now();
    const put = limitUploads(reading, 16 * KiB).put("blobs/slow", randomBytes(1 << 20), { signal: ac.signal });
    await expect(put).rejects.toThrow("stop");
    // It stopped waiting at the abort, long before the minute the body would take.
    expect(performance.now() - started).toBeLessThan(30_000);
    expect(inner.objects.has("blobs/slow")).toBe(false);
  });

  it("passes get, stat, list and delete through, and keeps the location", async () => {
    const inner = openMemoryStore();
    await inner.put("index/one", Buffer.from("hello"));
    const store = limitUploads(inner, 1 << 20);
    expect(store.location).toBe(inner.location);
    expect((await readAll(await store.get("index/one"))).toString()).toBe("hello");
    expect((await readAll(await store.get("index/one", { range: { offset: 1, length: 3 } }))).toString()).toBe("ell");
    expect((await store.stat("index/one")).size).toBe(5);
    const keys: string[] = [];
    for await (const info of store.list("index/")) keys.push(info.key);
    expect(keys).toEqual(["index/one"]);
    // put still never overwrites: the driver's answer comes back unchanged.
    expect(await store.put("index/one", Buffer.from("other"))).toBe(false);
    await store.delete("index/one");
    expect(inner.objects.has("index/one")).toBe(false);
  });

  it("rejects a rate that is not a positive number", () => {
    expect(() => limitUploads(openMemoryStore(), 0)).toThrow(RangeError);
    expect(() => limitUploads(openMemoryStore(), Number.NaN)).toThrow(RangeError);
  });
});
