import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { CatalogCommits, type CommitCatalog } from "../src/backup/catalog-commits.js";
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

function sealed(...hexes: ChunkId[]): SealedBlob {
  return { chunks: hexes.map((id) => ({ id })) } as unknown as SealedBlob;
}

const entry = (path: string): CatalogEntry => ({ path, type: "file", mode: 0o644, uid: 0, gid: 0, stamp: STAMP });

describe("CatalogCommits", () => {
  it("claims a chunk once per run, and never one the catalog already has", () => {
    const a = chunk("a");
    const b = chunk("b");
    const commits = new CatalogCommits(fakeCatalog([b.hash]));
    expect(commits.claim(a.hash, a.hex)).toBe(true);
    expect(commits.claim(a.hash, a.hex), "pending in this run: packed once").toBe(false);
    expect(commits.claim(b.hash, b.hex), "already stored").toBe(false);
  });

  it("records a file's chunk list only after every pending chunk it uses is committed", () => {
    const catalog = fakeCatalog();
    const commits = new CatalogCommits(catalog);
    const a = chunk("a");
    const b = chunk("b");
    commits.claim(a.hash, a.hex);
    commits.claim(b.hash, b.hex);
    commits.entry(entry("/f"));
    commits.fileRead("/f", STAMP, [a.hash, b.hash, a.hash].map((hash, i) => ({ hash, offset: i * 10, length: 10 })));
    commits.committed(sealed(a.hex));
    commits.flush();
    expect(catalog.calls, "b is not stored yet").toEqual(["entries /f", "chunks ", "forget "]);
    commits.committed(sealed(b.hex));
    commits.reread("/g");
    commits.flush();
    expect(catalog.calls.slice(3)).toEqual(["entries ", "chunks /f", "forget /g"]);
    // Committed chunks are no longer pending, yet the catalog (fake: empty) decides after that.
    expect(commits.claim(a.hash, a.hex)).toBe(true);
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
