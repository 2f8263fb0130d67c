import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Worker } from "node:worker_threads";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { planMemory } from "../src/backup/memory-plan.js";
import { chunkerParams } from "../src/chunk/fastcdc.js";
import { loadConfig } from "../src/config/index.js";
import { vaultik } from "./helpers/cli.js";
import { cliKeys, copyTree, expectRestores, localRepo, type LocalRepo } from "./helpers/setup.js";

// Issue 17: the pack workers (src/backup/pack-stage.ts) share one claim table, so a chunk met
// by two workers in one run is stored once, and the memory limit fixes how many run.

const MiB = 1024 * 1024;

describe("the claim table across real threads", () => {
  it("each of 20,000 chunk ids claimed by two threads at once is new for exactly one of them", async () => {
    const claims = new URL("../dist/backup/claims.js", import.meta.url).href;
    const { ChunkClaims } = (await import(claims)) as typeof import("../src/backup/claims.js");
    const table = new ChunkClaims(1 << 16);
    const ids = Buffer.from(randomBytes(20_000 * 32));
    const shared = new SharedArrayBuffer(ids.length);
    Buffer.from(shared).set(ids);
    // Both threads start only when both are ready (Atomics on a go word), then claim every id,
    // one front to back and the other back to front, so they meet in the middle.
    const go = new Int32Array(new SharedArrayBuffer(8));
    const code = `
      const { workerData, parentPort } = require("node:worker_threads");
      import(workerData.claims).then(({ ChunkClaims }) => {
        const t = new ChunkClaims(workerData.table);
        const ids = new Uint8Array(workerData.ids);
        Atomics.add(workerData.go, 0, 1);
        while (Atomics.load(workerData.go, 0) < 2) {}
        const mine = [];
        for (let k = 0; k < 20000; k++) {
          const i = workerData.reverse ? 19999 - k : k;
          if (t.claim(ids.subarray(i * 32, i * 32 + 32)) === "new") mine.push(i);
        }
        parentPort.postMessage(mine);
      });`;
    const run = (reverse: boolean) =>
      new Promise<number[]>((resolve, reject) => {
        const w = new Worker(code, { eval: true, workerData: { claims, table: table.buffer, ids: shared, go, reverse } });
        w.once("message", (m: number[]) => void w.terminate().then(() => resolve(m)));
        w.once("error", reject);
      });
    const [a, b] = await Promise.all([run(false), run(true)]);
    expect(a.length + b.length, "every id is new exactly once in all").toBe(20_000);
    expect(new Set([...a, ...b]).size).toBe(20_000);
    expect(a.length, "both threads claimed some").toBeGreaterThan(0);
    expect(b.length).toBeGreaterThan(0);
    expect(table.claim(ids.subarray(0, 32))).toBe("taken");
  });
});

describe("memory_limit fixes the number of pack workers", () => {
  const params = chunkerParams(MiB);
  it("the default 256 MiB runs one worker however many are asked for or cores there are", () => {
    for (const requested of [undefined, 2, 15]) {
      const plan = planMemory({ memoryLimit: 256 * MiB, params, blobSizeLimit: 16 * MiB, cores: 16, requested });
      expect(plan.workers, `asked ${requested}`).toBe(1);
      expect(plan.cappedFrom).toBe(requested ?? 16);
    }
  });

  it("a larger limit allows more, never more than asked; 0 keeps the stage on the main thread", () => {
    expect(planMemory({ memoryLimit: 512 * MiB, params, blobSizeLimit: 16 * MiB, cores: 16 }).workers).toBe(3);
    expect(planMemory({ memoryLimit: 4096 * MiB, params, blobSizeLimit: 16 * MiB, cores: 2 }).workers).toBe(2);
    expect(planMemory({ memoryLimit: 4096 * MiB, params, blobSizeLimit: 16 * MiB, cores: 2 }).cappedFrom).toBeUndefined();
    expect(planMemory({ memoryLimit: 256 * MiB, params, blobSizeLimit: 16 * MiB, cores: 2, requested: 0 }).workers).toBe(0);
  });

  it("memory_limit below 128 MiB is refused, naming the key", async () => {
    const dir = await mkdtemp(join(tmpdir(), "vaultik-memlimit-"));
    try {
      const r = await localRepo(dir, await cliKeys(), "memory_limit: 64MiB\n");
      await expect(loadConfig(r.config)).rejects.toThrow(/memory_limit: must be at least 128 MiB, got "64MiB"/);
      const out = await vaultik(["backup", r.config]);
      expect(out.code).toBe(2);
      expect(out.stderr).toMatch(/memory_limit/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe("command outputs through a pack worker (the CLI)", () => {
  it("two commands of many pieces each share the one worker the default memory_limit allows", async () => {
    const dir = await mkdtemp(join(tmpdir(), "vaultik-packstreams-"));
    try {
      const commands =
        "commands:\n" +
        '  - { name: one, run: "seq 1 300000", path: commands/one.txt }\n' +
        '  - { name: two, run: "seq 300001 600000", path: commands/two.txt }\n';
      const r = await localRepo(dir, await cliKeys(), commands);
      const out = await vaultik(["backup", r.config, "--json"]);
      expect(out.code, out.stderr).toBe(0);
      const summary = JSON.parse(out.stdout) as { workers: number; filesNew: number; snapshotId: string };
      expect(summary.workers).toBe(1);
      expect(summary.filesNew).toBe(2);
      const one = await vaultik(["fetch", r.repo, summary.snapshotId, "/commands/one.txt", "-"], { env: { VAULTIK_PRIVATE_KEY: r.identity } });
      expect(one.code, one.stderr).toBe(0);
      const lines = one.stdout.split("\n");
      expect(lines.length).toBe(300001);
      expect([lines[0], lines[299999]]).toEqual(["1", "300000"]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe("two pack workers, one repository (through the CLI)", () => {
  let dir: string;
  let r: LocalRepo;
  const copies = 40;
  const size = 256 * 1024;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "vaultik-packworkers-"));
    r = await localRepo(dir, await cliKeys(), "memory_limit: 2GiB\n");
    // The walk hands files out alternately to the two workers (the one with fewer files
    // waiting), so the same content reaches both.
    const same = randomBytes(size);
    for (let i = 0; i < copies; i++) await writeFile(join(r.source, `copy-${String(i).padStart(2, "0")}.bin`), same);
    await writeFile(join(r.source, "other.bin"), randomBytes(3 * MiB));
  }, 60_000);

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("stores content met by both workers once, restores it, and a re-run finds every file unchanged", async () => {
    const frozen = copyTree(r.source, join(dir, "frozen"));
    const env = { VAULTIK_WORKERS: "2" };
    const first = await vaultik(["backup", r.config, "--json"], { env });
    expect(first.code, first.stderr).toBe(0);
    const summary = JSON.parse(first.stdout) as { snapshotId: string; workers: number; bytesNew: number; bytesRead: number; filesNew: number };
    expect(summary.workers).toBe(2);
    expect(summary.filesNew).toBe(copies + 1);
    expect(summary.bytesRead).toBe(copies * size + 3 * MiB);
    expect(summary.bytesNew, "one copy of the shared content is new, the other 39 reference it").toBe(size + 3 * MiB);
    let stored = 0;
    for (const shard of await readdir(join(r.repo, "blobs"))) {
      for (const sub of await readdir(join(r.repo, "blobs", shard))) {
        for (const name of await readdir(join(r.repo, "blobs", shard, sub))) stored += (await stat(join(r.repo, "blobs", shard, sub, name))).size;
      }
    }
    expect(stored, "random bytes do not compress: one copy of each is what is stored").toBeLessThan(1.1 * (size + 3 * MiB));
    expect(stored).toBeGreaterThan(size + 3 * MiB);
    await expectRestores(r, summary.snapshotId, frozen);
    const again = await vaultik(["backup", r.config, "--json"], { env });
    expect(again.code, again.stderr).toBe(0);
    const second = JSON.parse(again.stdout) as { filesUnchanged: number; bytesRead: number };
    expect(second.filesUnchanged, "every file's chunk list reached the index").toBe(copies + 1);
    expect(second.bytesRead).toBe(0);
  }, 120_000);
});
