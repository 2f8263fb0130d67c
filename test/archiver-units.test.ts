import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { CatalogCommits, type CommitCatalog } from "../src/backup/catalog-commits.js";
import { ChunkClaims } from "../src/backup/claims.js";
import { Packer, type ChunkPacker } from "../src/backup/packer.js";
import type { CatalogEntry, FileStamp } from "../src/catalog/db.js";
import type { ChunkId } from "../src/model/ids.js";
import type { SealedBlob } from "../src/pack/writer.js";

// The archiver's two bookkeeping units, in-process and without a run (issue 13 item 6): the
// catalog commit rules (a file's chunk list is recorded only once every chunk it references is
// stored; a chunk is packed once per run) and the packer's memory bound.

const STAMP: FileStamp = { size: 3n, mtimeNs: 1n, ctimeNs: 1n, inode: 7n, dev: 1n };

function chunk(text: string): { hash: Buffer; hex: ChunkId } {
  const hash = createHash("sha256").update(text).digest();
  return { hash, hex: hash.toString("hex") as ChunkId };
}

/** A catalog that remembers what it was told, in order, and knows the chunks it was given. */
function fakeCatalog(stored: Buffer[] = []): CommitCatalog & { calls: string[] } {
  const calls: string[] = [];
  return {
    calls,
    hasChunk: (hash) => stored.some((s) => s.equals(hash)),
    recordEntries: (entries: readonly CatalogEntry[]) => void calls.push(`entries ${entries.map((e) => e.path).join(",")}`),
    recordChunks: (files) => void calls.push(`chunks ${files.map((f) => f.path).join(",")}`),
    forgetChunks: (paths) => void calls.push(`forget ${paths.join(",")}`),
  };
}

const entry = (path: string): CatalogEntry => ({ path, type: "file", mode: 0o644, uid: 0, gid: 0, stamp: STAMP });
function sealed(...hexes: ChunkId[]): SealedBlob {
  return { chunks: hexes.map((id) => ({ id })) } as unknown as SealedBlob;
}

const ids = (...hexes: ChunkId[]) => hexes.map((id) => ({ id }));

describe("ChunkClaims (the run's shared table of chunks being stored)", () => {
  it("the first claim of a chunk is new, every later one (any thread) is taken", () => {
    const table = new ChunkClaims(1024);
    const other = new ChunkClaims(table.buffer); // what a second worker sees
    const a = chunk("a");
    const b = chunk("b");
    expect(table.claim(a.hash)).toBe("new");
    expect(table.claim(a.hash)).toBe("taken");
    expect(other.claim(a.hash), "the same table from another view").toBe("taken");
    expect(other.claim(b.hash)).toBe("new");
    expect(table.claim(b.hash)).toBe("taken");
  });

  it("keeps chunks apart whose ids collide in the slot index, and answers new past 3/4 full", () => {
    const table = new ChunkClaims(16);
    const hashes = Array.from({ length: 12 }, (_, i) => chunk(`c${i}`).hash);
    expect(hashes.map((h) => table.claim(h))).toEqual(Array(12).fill("new"));
    expect(hashes.map((h) => table.claim(h))).toEqual(Array(12).fill("taken"));
    // 12 of 16 slots: full. A 13th chunk is "new" every time (stored again: space, not safety).
    const late = chunk("late").hash;
    expect([table.claim(late), table.claim(late)]).toEqual(["new", "new"]);
  });

  it("two ids that share the slot-index bits but differ later are different chunks", () => {
    const table = new ChunkClaims(1024);
    const x = Buffer.alloc(32, 7);
    const y = Buffer.from(x);
    y[10] = 8; // same words 0, 1 (slot index uses words 1 and 2: word 2 differs) …
    const z = Buffer.from(x);
    z[14] = 9; // … and one that differs only in word 3
    expect([table.claim(x), table.claim(y), table.claim(z), table.claim(x)]).toEqual(["new", "new", "new", "taken"]);
  });
});

describe("CatalogCommits", () => {
  it("records a file's chunk list only once the blobs of its lane that hold its chunks are stored", () => {
    const catalog = fakeCatalog();
    const commits = new CatalogCommits(catalog);
    commits.entry(entry("/f"));
    commits.entry(entry("/g"));
    const list = [{ hash: chunk("a").hash, offset: 0, length: 3 }];
    commits.fileRead("/f", STAMP, list, { lane: 0, id: 1, needSeq: 2, others: [] });
    commits.fileRead("/g", STAMP, list, { lane: 1, id: 1, needSeq: 1, others: [] });
    commits.committed(0, 2, []); // blob 2 stored before blob 1: not enough for /f
    commits.flush();
    expect(catalog.calls).toEqual(["entries /f,/g", "chunks ", "forget "]);
    commits.committed(0, 1, []);
    commits.committed(1, 1, []);
    commits.flush();
    expect(catalog.calls.slice(3)).toEqual(["entries ", "chunks /f,/g", "forget "]);
  });

  it("a file whose blob is not sealed yet waits for the blob that names it, whichever comes first", () => {
    const catalog = fakeCatalog();
    const commits = new CatalogCommits(catalog);
    const list = [{ hash: chunk("a").hash, offset: 0, length: 3 }];
    commits.fileRead("/late", STAMP, list, { lane: 0, id: 7, needSeq: -1, others: [] });
    commits.committed(0, 1, []);
    commits.flush();
    expect(catalog.calls, "blob 1 does not name it").toEqual(["entries ", "chunks ", "forget "]);
    commits.sealed(0, 2, [7]);
    commits.sealed(0, 3, [8]); // named before its result came in
    commits.fileRead("/early", STAMP, list, { lane: 0, id: 8, needSeq: -1, others: [] });
    commits.committed(0, 2, []);
    commits.flush();
    expect(catalog.calls.slice(3)).toEqual(["entries ", "chunks /late", "forget "]);
    commits.committed(0, 3, []);
    commits.flush();
    expect(catalog.calls.slice(6)).toEqual(["entries ", "chunks /early", "forget "]);
  });

  it("a chunk another file stores: waits for the blob holding it unless the catalog has it", () => {
    const a = chunk("a");
    const b = chunk("b");
    const catalog = fakeCatalog([b.hash]);
    const commits = new CatalogCommits(catalog);
    const list = [a.hash, b.hash].map((hash, i) => ({ hash, offset: i * 3, length: 3 }));
    commits.fileRead("/f", STAMP, list, { lane: 1, id: 1, needSeq: 0, others: [a.hash, b.hash] });
    commits.committed(0, 1, ids(chunk("x").hex));
    commits.flush();
    expect(catalog.calls).toEqual(["entries ", "chunks ", "forget "]);
    commits.committed(0, 2, ids(a.hex));
    commits.reread("/g");
    commits.flush();
    expect(catalog.calls.slice(3)).toEqual(["entries ", "chunks /f", "forget /g"]);
  });

  it("a file whose chunks are all stored already is ready at once", () => {
    const catalog = fakeCatalog();
    const commits = new CatalogCommits(catalog);
    commits.fileRead("/stored", STAMP, [{ hash: chunk("x").hash, offset: 0, length: 3 }]);
    commits.flush();
    expect(catalog.calls).toEqual(["entries ", "chunks /stored", "forget "]);
  });
});

/** A writer whose add() resolves only when the test says so. */
function heldWriter(): ChunkPacker & { release(i: number, out?: SealedBlob[]): void; fail(i: number, err: Error): void; aborted: boolean } {
  const held: { resolve: (s: SealedBlob[]) => void; reject: (e: Error) => void }[] = [];
  const w = {
    aborted: false,
    add: () => new Promise<SealedBlob[]>((resolve, reject) => held.push({ resolve, reject })),
    flush: async () => [sealed("ff" as ChunkId)],
    abort: async () => void (w.aborted = true),
    release: (i: number, out: SealedBlob[] = []) => held[i]!.resolve(out),
    fail: (i: number, err: Error) => held[i]!.reject(err),
  };
  return w;
}

/** Lets every queued callback run, so "still waiting" means waiting on something unresolved. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

describe("Packer", () => {
  it("holds the chunkers back while more than its budget waits to be packed", async () => {
    const writer = heldWriter();
    const sent: (readonly SealedBlob[])[] = [];
    const packer = new Packer(writer, async (blobs) => void sent.push(blobs), 10);
    packer.add(new Uint8Array(6), "01" as ChunkId);
    await packer.room(); // 6 bytes waiting: under the budget
    packer.add(new Uint8Array(6), "02" as ChunkId);
    let roomy = false;
    const room = packer.room().then(() => (roomy = true));
    await settle();
    expect(roomy, "12 bytes waiting, budget 10").toBe(false);
    writer.release(0, [sealed("01" as ChunkId)]);
    await room;
    expect(sent).toEqual([[sealed("01" as ChunkId)]]);
    writer.release(1);
    await packer.finish();
    expect(sent.at(-1), "finish() sends what the writer still held").toEqual([sealed("ff" as ChunkId)]);
  });

  it("reports the first packing failure to the next caller, and abort() waits for the rest", async () => {
    const writer = heldWriter();
    const packer = new Packer(writer, async () => {}, 1 << 20);
    packer.add(new Uint8Array(1), "01" as ChunkId);
    packer.add(new Uint8Array(1), "02" as ChunkId);
    writer.fail(0, new Error("zstd broke"));
    await settle();
    expect(() => packer.throwIfFailed()).toThrow("zstd broke");
    await expect(packer.room()).rejects.toThrow("zstd broke");
    const aborted = packer.abort();
    await settle();
    expect(writer.aborted, "the writer is aborted only once nothing is being appended").toBe(false);
    writer.release(1);
    await aborted;
    expect(writer.aborted).toBe(true);
  });
});
