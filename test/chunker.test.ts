import { execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chunkFile, type ChunkItem } from "../src/backup/chunker.js";
import { chunkerParams } from "../src/chunk/fastcdc.js";

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-chunker-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const params = chunkerParams(64 * 1024);
const sink = (items: ChunkItem[]) => ({ isStored: () => false, emit: async (batch: ChunkItem[]) => void items.push(...batch) });

describe("chunkFile", () => {
  for (const sync of [true, false]) {
    it(`${sync ? "blocking" : "async"} reads: a regular file yields its chunks and its stat`, async () => {
      const path = join(dir, `f-${sync}`);
      await writeFile(path, Buffer.alloc(300_000, 7));
      const items: ChunkItem[] = [];
      const r = await chunkFile(path, 300_000, params, sink(items), sync);
      expect(r.size).toBe(300_000);
      expect(items.reduce((n, i) => n + i.rawLength, 0)).toBe(300_000);
      expect(r.stamp.size).toBe(300_000n);
    });

    it(`${sync ? "blocking" : "async"} reads: a FIFO swapped in for a file is refused at once, not waited on`, async () => {
      const path = join(dir, `fifo-${sync}`);
      execFileSync("mkfifo", [path]);
      const err = await chunkFile(path, 10, params, sink([]), sync).catch((e: unknown) => e);
      expect((err as NodeJS.ErrnoException).code).toBe("ENOTREG");
      expect((err as Error).message).toContain(path);
    });
  }
});
