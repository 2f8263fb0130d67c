import { readdirSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";
import { assertNotDoomed, syncCatalog } from "../src/backup/prune-sync.js";
import { Catalog } from "../src/catalog/db.js";
import { LockedError } from "../src/errors.js";
import type { ChunkLocation } from "../src/model/chunk.js";
import { chunkId, type BlobName } from "../src/model/ids.js";
import { blobKey, blobNameOfKey, noticeKey, PRUNE_LOCK, runEndKey, heartbeatKey, snapshotKey } from "../src/repo/layout.js";
import { Repository } from "../src/repo/repository.js";
import { readAll } from "../src/store/bytes.js";
import { openMemoryStore } from "../src/store/memory.js";
import { SnapshotBuilder } from "../src/snapshot/build.js";
import { SnapshotReader } from "../src/snapshot/read.js";

// Issue 13 items 1 and 3: the repository's key layout has one owner (repo/layout.ts) and the
// store is reached only through Repository; each SQLite schema is queried only by its owner.

const NAME_A = "ab".repeat(32) as BlobName;
const NAME_B = "cd".repeat(32) as BlobName;

describe("repo/layout owns every key of the repository", () => {
  it("blob keys fan out by the name's first two bytes and parse back", () => {
    expect(blobKey(NAME_A)).toBe(`blobs/ab/ab/${NAME_A}`);
    expect(blobNameOfKey(blobKey(NAME_A))).toBe(NAME_A);
    expect(blobNameOfKey(`blobs/ab/cd/${NAME_A}`)).toBeUndefined();
    expect(blobNameOfKey(`blobs/${NAME_A}`)).toBeUndefined();
  });

  it("snapshots, runs, notices and the prune lock", () => {
    expect(snapshotKey("index/", "20261123T105529Z_h_3f9a0c1d")).toBe("index/20261123T105529Z_h_3f9a0c1d.sqlite.zst.age");
    expect(heartbeatKey("s1", 1234)).toBe("runs/s1/1234.json");
    expect(runEndKey("s1")).toBe("runs/s1/done.json");
    expect(noticeKey("pending", "5-ab.json")).toBe("prune/pending/5-ab.json");
    expect(noticeKey("done", "5-ab.json")).toBe("prune/done/5-ab.json");
    expect(PRUNE_LOCK).toBe("locks/prune.json");
  });
});

describe("Repository: callers speak of blobs, runs, notices and the lock, never of keys", () => {
  it("does not expose its store", () => {
    const store = openMemoryStore("private");
    const repo = new Repository(store);
    expect(Object.values(repo)).not.toContain(store);
    expect((repo as unknown as Record<string, unknown>)["store"]).toBeUndefined();
    expect(repo.location).toBe("memory:private");
  });

  it("lists, reads (whole or a range) and deletes blobs, ignoring other keys", async () => {
    const store = openMemoryStore();
    const repo = new Repository(store);
    await store.put(blobKey(NAME_A), Buffer.from("0123456789"));
    await store.put(blobKey(NAME_B), Buffer.from("xy"));
    await store.put("blobs/junk", Buffer.from("?"));
    await store.put(`blobs/cd/cd/${NAME_A}`, Buffer.from("misplaced"));
    const listed = await repo.listBlobs();
    expect(listed.map((b) => [b.name, b.size]).sort()).toEqual([[NAME_A, 10], [NAME_B, 2]]);
    expect((await readAll(await repo.openBlob(NAME_A))).toString()).toBe("0123456789");
    expect((await repo.readBlobRange(NAME_A, { offset: 3, length: 4 })).toString()).toBe("3456");
    expect(repo.blobObject(NAME_A)).toBe(blobKey(NAME_A));
    await repo.deleteBlob(NAME_A);
    expect((await repo.listBlobs()).map((b) => b.name)).toEqual([NAME_B]);
    expect(store.objects.has("blobs/junk")).toBe(true);
  });

  it("records backup runs by heartbeat and end marker, and forgets them", async () => {
    const repo = new Repository(openMemoryStore());
    await repo.beat("snap-1", 1000);
    await repo.beat("snap-1", 2000);
    await repo.beat("snap-2", 3000);
    expect(await repo.runStarted("snap-1")).toBeTypeOf("number");
    await repo.endRun("snap-1");
    const runs = await repo.runs();
    expect(runs.map((r) => [r.snapshotId, r.finished]).sort()).toEqual([["snap-1", true], ["snap-2", false]]);
    await repo.deleteRun(runs.find((r) => r.snapshotId === "snap-1")!);
    expect((await repo.runs()).map((r) => r.snapshotId)).toEqual(["snap-2"]);
  });

  it("publishes, lists, retires and deletes prune notices", async () => {
    const repo = new Repository(openMemoryStore());
    const notice = await repo.publishNotice([NAME_A, NAME_B], 1000, 5000);
    const pending = await repo.notices("pending");
    expect(pending.map((n) => [n.key, n.blobs, n.notBefore])).toEqual([[notice.key, [NAME_A, NAME_B], 5000]]);
    expect(await repo.notices("done")).toEqual([]);
    await repo.retireNotice(notice, 6000);
    expect(await repo.notices("pending")).toEqual([]);
    const [done] = await repo.notices("done");
    expect(done!.blobs).toEqual([NAME_A, NAME_B]);
    await repo.deleteNotice(done!);
    expect(await repo.notices("done")).toEqual([]);
  });

  it("hands out the prune lock to one prune at a time", async () => {
    const repo = new Repository(openMemoryStore());
    const lock = await repo.acquirePruneLock(Date.now(), 3600_000);
    await expect(repo.acquirePruneLock(Date.now(), 3600_000)).rejects.toBeInstanceOf(LockedError);
    await lock.release();
    await (await repo.acquirePruneLock(Date.now(), 3600_000)).release();
  });
});

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), "vaultik-repository-"));
  dirs.push(dir);
  return dir;
}

const META = {
  id: "s", host: "h", time: new Date(0).toISOString(), sourceDirs: ["/"], vaultikVersion: "0",
  chunker: "fastcdc-2016", chunkSize: 1 << 20, chunkHash: "sha256", blobHash: "sha256", compression: "zstd",
};

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), "../src");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

describe("each SQLite schema has one owner", () => {
  const files = sources(SRC).map((f) => ({ rel: relative(SRC, f), text: readFileSync(f, "utf8") }));

  it("only catalog/ and snapshot/ open SQLite databases", () => {
    // `vaultik version --json` asks SQLite its version, on an in-memory database of no schema.
    const users = files.filter((f) => f.text.includes("better-sqlite3") && f.rel !== "cli/health.ts").map((f) => f.rel.split("/")[0]);
    expect([...new Set(users)].sort()).toEqual(["catalog", "snapshot"]);
  });

  it("neither folder queries the other's tables through an attached database", () => {
    const leaks = files
      .filter((f) => (f.rel.startsWith("snapshot/") && /\bcat\.(chunks|blobs|entries|state)\b/.test(f.text)) ||
        (f.rel.startsWith("catalog/") && /\bsnap\.(files|file_chunks|chunks|blobs|meta|errors)\b/.test(f.text)))
      .map((f) => f.rel);
    expect(leaks).toEqual([]);
  });

  it("nothing outside repo/ builds or parses object keys", () => {
    const leaks = files
      .filter((f) => !f.rel.startsWith("repo/") && !f.rel.startsWith("store/") && /"(blobs|runs|prune\/pending|prune\/done|locks)\//.test(f.text))
      .map((f) => f.rel);
    expect(leaks).toEqual([]);
  });
});

describe("SnapshotReader answers check's questions without exposing its database", () => {
  it("chunk locations and the files that use a blob", async () => {
    const dir = await tempDir();
    const catalog = new Catalog(join(dir, "catalog.sqlite"));
    catalog.useRecipients("r");
    const ids = ["one", "two", "three"].map((s) => chunkId(Buffer.from(s)));
    const loc = (i: number, blob: BlobName): ChunkLocation => ({
      id: ids[i]!, blob, offset: i * 100, length: 100, rawOffset: 0, rawLength: 10, compression: "zstd",
    });
    catalog.recordBlob({ name: NAME_A, size: 1000, headerLength: 200 }, [loc(0, NAME_A), loc(1, NAME_A)]);
    catalog.recordBlob({ name: NAME_B, size: 500, headerLength: 200 }, [loc(2, NAME_B)]);
    const path = join(dir, "snap.sqlite");
    const builder = new SnapshotBuilder(path, META);
    const file = (p: string, size: number) => ({ path: p, type: "file" as const, mode: 0o644, uid: 0, gid: 0, size, mtimeNs: 0n });
    const ref = (i: number, offset: number) => ({ offset, length: 10, hash: Buffer.from(ids[i]!, "hex") });
    builder.add(file("a", 20), [ref(0, 0), ref(1, 10)]);
    builder.add(file("b", 10), [ref(2, 0)]);
    builder.add(file("c", 10), [ref(0, 0)]);
    expect(builder.finish(catalog).blobs.sort()).toEqual([NAME_A, NAME_B]);
    catalog.close();

    const reader = new SnapshotReader(path, "snap");
    try {
      expect(Object.keys(reader)).not.toContain("db");
      expect((reader as unknown as Record<string, unknown>)["db"]).toBeUndefined();
      const locs = [...reader.chunkLocations()].sort((x, y) => x.offset - y.offset);
      expect(locs).toEqual([loc(0, NAME_A), loc(1, NAME_A), loc(2, NAME_B)]);
      expect(reader.filesUsing(NAME_A)).toEqual(["a", "c"]);
      expect(reader.filesUsing(NAME_B)).toEqual(["b"]);
    } finally {
      reader.close();
    }
  });
});

describe("a snapshot takes its chunk locations from the catalog", () => {
  it("refuses to finish when a chunk's blob is not recorded as stored, and leaves both databases usable", async () => {
    const dir = await tempDir();
    const catalog = new Catalog(join(dir, "catalog.sqlite"));
    const builder = new SnapshotBuilder(join(dir, "snap.sqlite"), META);
    try {
      catalog.useRecipients("r");
      const orphan = chunkId(Buffer.from("orphan"));
      builder.add({ path: "f", type: "file", mode: 0o644, uid: 0, gid: 0, size: 6, mtimeNs: 0n }, [{ offset: 0, length: 6, hash: Buffer.from(orphan, "hex") }]);
      expect(() => builder.finish(catalog)).toThrow(new RegExp(`chunk ${orphan}: is referenced but its blob is not recorded as stored`));
      // The catalog was detached again: it can still be written and closed.
      catalog.recordBlob({ name: NAME_A, size: 1, headerLength: 1 }, []);
      expect(catalog.blobNames()).toEqual([NAME_A]);
    } finally {
      builder.discard();
      catalog.close();
    }
  });
});

describe("a backup meets prunes through the Repository (backup/prune-sync.ts)", () => {
  it("the catalog forgets blobs announced, missing or stored with another size", async () => {
    const dir = await tempDir();
    const NAME_C = "ef".repeat(32) as BlobName;
    const NAME_D = "01".repeat(32) as BlobName;
    const store = openMemoryStore();
    const repo = new Repository(store);
    const catalog = new Catalog(join(dir, "catalog.sqlite"));
    try {
      catalog.useRecipients("r");
      for (const [name, size] of [[NAME_A, 10], [NAME_B, 2], [NAME_C, 5], [NAME_D, 7]] as const) {
        catalog.recordBlob({ name, size, headerLength: 1 }, []);
      }
      await store.put(blobKey(NAME_A), Buffer.alloc(10));
      await store.put(blobKey(NAME_B), Buffer.alloc(3)); // another size: a damaged copy
      await store.put(blobKey(NAME_C), Buffer.alloc(5)); // announced by a prune
      await repo.publishNotice([NAME_C], Date.now(), Date.now());
      // NAME_D is not stored at all.
      expect(await syncCatalog(catalog, repo)).toBe(3);
      expect(catalog.blobNames()).toEqual([NAME_A]);

      const since = Date.now() - 120_000;
      await repo.publishNotice([NAME_A], Date.now(), Date.now());
      await expect(assertNotDoomed(catalog, repo, [NAME_A], since)).rejects.toThrow(/announced deletion of 1 blob/);
      expect(catalog.blobNames()).toEqual([]);
    } finally {
      catalog.close();
    }
  });
});
