import { createHash } from "node:crypto";
import type { BlobName, ChunkId } from "../src/model/ids.js";
import { existsSync, lstatSync, readFileSync, readlinkSync, statSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { blobKey } from "../src/repo/layout.js";
import type { ChunkLocation } from "../src/model/chunk.js";
import { compressFrame } from "../src/pack/zstd.js";
import { FileSink, frameWork, type SinkFailure, type SinkItem, type WriteOp } from "../src/restore/sink.js";
import { vaultik } from "./helpers/cli.js";
import { backupId, cliKeys, copyTree, localRepo, storedBlobs } from "./helpers/setup.js";
import { describeTree, pseudoRandom } from "./helpers/tree.js";

// The restore's file end: frames decompressed and checked, chunks written, files finished, on
// the main thread (FileSink from the sources) and on writer threads (the compiled Writers).

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-writers-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const BLOB = "ab".repeat(32);
const MTIME = 1_600_000_000.25;

/** A frame of `parts` (small chunks sharing one zstd frame) and their locations. */
async function frameOf(parts: Buffer[], offset = 0): Promise<{ frame: Buffer; locs: ChunkLocation[] }> {
  const frame = await compressFrame(Buffer.concat(parts));
  let raw = 0;
  const locs = parts.map((p) => {
    const loc: ChunkLocation = {
      id: createHash("sha256").update(p).digest("hex") as ChunkId, blob: BLOB as BlobName, offset, length: frame.length,
      rawOffset: raw, rawLength: p.length, compression: "zstd",
    };
    raw += p.length;
    return loc;
  });
  return { frame, locs };
}

const meta = (size: number, mode = 0o640) => ({ size, mode, uid: 0, gid: 0, mtime: MTIME });
/** A write that is a whole file of `size` bytes, finished with it. */
const whole = (fileId: number, abs: string, size: number, mode?: number): WriteOp => ({ fileId, abs, offset: 0, finish: meta(size, mode) });

/** One batch holding the given frames back to back, as Writers builds it. */
function batchOf(frames: { frame: Buffer; chunks: { loc: ChunkLocation; targets: WriteOp[] }[] }[]): { data: Buffer; items: SinkItem[] } {
  let start = 0;
  const items: SinkItem[] = frames.map((f) => {
    const item: SinkItem = { kind: "frame", start, length: f.frame.length, object: blobKey(BLOB), work: frameWork(f.chunks) };
    start += f.frame.length;
    return item;
  });
  return { data: Buffer.concat(frames.map((f) => f.frame)), items };
}

describe("FileSink", () => {
  it("writes chunks of a shared frame to their files and finishes single-chunk files", async () => {
    const out = join(dir, "sink-shared");
    await mkdir(out);
    const a = pseudoRandom(3000, 1);
    const b = pseudoRandom(5000, 2);
    const { frame, locs } = await frameOf([a, b]);
    const { data, items } = batchOf([
      {
        frame,
        chunks: [
          { loc: locs[0]!, targets: [whole(1, join(out, "a"), 3000, 0o600)] },
          // The same chunk twice: two files with the same content.
          { loc: locs[1]!, targets: [whole(2, join(out, "b"), 5000), whole(3, join(out, "b2"), 5000)] },
        ],
      },
    ]);
    const sink = new FileSink(false);
    expect(await sink.applyBatch(items, data)).toEqual([]);
    expect(readFileSync(join(out, "a")).equals(a)).toBe(true);
    expect(readFileSync(join(out, "b")).equals(b)).toBe(true);
    expect(readFileSync(join(out, "b2")).equals(b)).toBe(true);
    expect(statSync(join(out, "a")).mode & 0o777).toBe(0o600);
    expect(statSync(join(out, "b")).mode & 0o777).toBe(0o640);
    expect(statSync(join(out, "b")).mtimeMs).toBe(MTIME * 1000);
    expect([sink.bytes, sink.files]).toEqual([13000, 3]);
  });

  it("writes a file of several chunks at their offsets, in any order, and leaves it open to be finished", async () => {
    const out = join(dir, "sink-multi");
    await mkdir(out);
    const parts = [pseudoRandom(7000, 3), pseudoRandom(6000, 4), pseudoRandom(1000, 5)];
    const frames = await Promise.all(parts.map((p, i) => frameOf([p], i * 100_000)));
    const abs = join(out, "big");
    const offsets = [0, 7000, 13000];
    // Last chunk first: offsets, not order, put bytes in place.
    const order = [2, 0, 1];
    const { data, items } = batchOf(order.map((i) => ({ frame: frames[i]!.frame, chunks: [{ loc: frames[i]!.locs[0]!, targets: [{ fileId: 7, abs, offset: offsets[i]! }] }] })));
    const sink = new FileSink(false);
    expect(await sink.applyBatch(items, data)).toEqual([]);
    sink.closeAll();
    expect(readFileSync(abs).equals(Buffer.concat(parts))).toBe(true);
    expect(sink.files).toBe(0);
  });

  it("refuses a chunk that does not match its id: the file is not written, the error names the blob", async () => {
    const out = join(dir, "sink-bad");
    await mkdir(out);
    const good = pseudoRandom(4000, 6);
    const { frame, locs } = await frameOf([good]);
    const lying = { ...locs[0]!, id: "00".repeat(32) as ChunkId };
    const { data, items } = batchOf([{ frame, chunks: [{ loc: lying, targets: [whole(9, join(out, "x"), 4000)] }] }]);
    const failed = await new FileSink(false).applyBatch(items, data);
    expect(failed).toEqual([{ fileId: 9, path: join(out, "x"), message: expect.stringMatching(/chunk 0000000000000000… at offset 0 does not match its id/) }]);
    expect(existsSync(join(out, "x"))).toBe(false);
  });

  it("in a shared frame, only the chunk that fails its check fails: its neighbours are written", async () => {
    const out = join(dir, "sink-neighbours");
    await mkdir(out);
    const a = pseudoRandom(2000, 8);
    const b = pseudoRandom(3000, 9);
    const { frame, locs } = await frameOf([a, b]);
    const { data, items } = batchOf([
      {
        frame,
        chunks: [
          { loc: locs[0]!, targets: [whole(1, join(out, "good"), 2000)] },
          { loc: { ...locs[1]!, id: "22".repeat(32) as ChunkId }, targets: [whole(2, join(out, "bad"), 3000)] },
        ],
      },
    ]);
    const failed = await new FileSink(false).applyBatch(items, data);
    expect(failed.map((f) => f.fileId)).toEqual([2]);
    expect(readFileSync(join(out, "good")).equals(a)).toBe(true);
    expect(existsSync(join(out, "bad"))).toBe(false);
  });

  it("does not follow a symlink at a file's name", async () => {
    const out = join(dir, "sink-link");
    await mkdir(out);
    const victim = join(dir, "victim.txt");
    await writeFile(victim, "untouched");
    await symlink(victim, join(out, "f"));
    const { frame, locs } = await frameOf([pseudoRandom(100, 7)]);
    const { data, items } = batchOf([{ frame, chunks: [{ loc: locs[0]!, targets: [whole(1, join(out, "f"), 100)] }] }]);
    const failed = await new FileSink(false).applyBatch(items, data);
    expect(failed.map((f) => f.message)).toEqual([expect.stringMatching(/ELOOP/)]);
    expect(await readFile(victim, "utf8")).toBe("untouched");
    expect(readlinkSync(join(out, "f"))).toBe(victim);
  });
});

describe("Writers on threads (compiled)", () => {
  it("spreads frames over two threads; every byte lands, a bad chunk is reported with its file", async () => {
    // npm test builds dist/ first; the compiled module finds its worker script.
    const { Writers } = (await import("../dist/restore/writers.js")) as unknown as typeof import("../src/restore/writers.js");
    const out = join(dir, "threads");
    await mkdir(out);
    const failures: SinkFailure[] = [];
    let bytes = 0;
    let files = 0;
    const writers = new Writers({ owners: false, threads: 2, onApplied: (b, f) => ((bytes += b), (files += f)), onFailed: (f) => failures.push(f) });
    const expected = new Map<string, Buffer>();
    try {
      // 300 files of 20-60 KiB: more than one 4 MiB batch, so both threads get work.
      for (let i = 0; i < 300; i++) {
        const content = pseudoRandom(20_000 + (i % 5) * 10_000, 100 + i);
        const { frame, locs } = await frameOf([content], i * 70_000);
        const abs = join(out, `f${i}`);
        expected.set(abs, content);
        // Routed by file here, so both threads get work.
        await writers.writeFrame(frame, blobKey(BLOB), frameWork([{ loc: locs[0]!, targets: [whole(i, abs, content.length)] }]), i);
      }
      const { frame, locs } = await frameOf([pseudoRandom(500, 1)], 99_000_000);
      await writers.writeFrame(frame, blobKey(BLOB), frameWork([{ loc: { ...locs[0]!, id: "11".repeat(32) as ChunkId }, targets: [whole(1000, join(out, "bad"), 500)] }]), 0);
      await writers.drain();
    } finally {
      await writers.close();
    }
    for (const [abs, content] of expected) expect(readFileSync(abs).equals(content), abs).toBe(true);
    expect(files).toBe(300);
    expect(bytes).toBe([...expected.values()].reduce((n, b) => n + b.length, 0));
    expect(failures).toEqual([{ fileId: 1000, path: join(out, "bad"), message: expect.stringMatching(/does not match its id/) }]);
    expect((await readdir(out)).length).toBe(300);
  });
});

describe("routeOf", () => {
  it("sends one directory always to the same thread and spreads sibling directories", async () => {
    const { routeOf } = await import("../src/restore/writers.js");
    expect(routeOf("/t/usr/share/doc")).toBe(routeOf("/t/usr/share/doc"));
    const onFirst = Array.from({ length: 200 }, (_, i) => routeOf(`/t/usr/share/doc/pkg-${i}`) % 2).filter((r) => r === 0).length;
    expect(onFirst).toBeGreaterThan(70);
    expect(onFirst).toBeLessThan(130);
  });
});

describe("restore through the CLI", () => {
  it("into a target holding older, longer versions of the files: they end up exactly as backed up", async () => {
    const keys = await cliKeys();
    const r = await localRepo(join(dir, "over"), keys);
    await mkdir(join(r.source, "d"), { recursive: true });
    await writeFile(join(r.source, "d", "small.txt"), "short now");
    await writeFile(join(r.source, "d", "big.bin"), pseudoRandom(300_000, 11));
    await writeFile(join(r.source, "d", "empty"), "");
    const want = copyTree(r.source, join(r.dir, "want"));
    const id = await backupId(r);
    const target = join(r.dir, "target");
    const inTarget = join(target, r.source.slice(1), "d");
    await mkdir(inTarget, { recursive: true });
    await writeFile(join(inTarget, "small.txt"), "a much longer text that was here before the restore");
    await writeFile(join(inTarget, "big.bin"), pseudoRandom(900_000, 12));
    await writeFile(join(inTarget, "empty"), "not empty");
    const out = await vaultik(["restore", r.repo, "", id, target], { env: { VAULTIK_PRIVATE_KEY: r.identity } });
    expect(out.code, out.stderr).toBe(0);
    const got = await describeTree(join(target, r.source.slice(1)));
    expect([...got.entries()]).toEqual([...(await describeTree(want)).entries()]);
  });

  it("with 0, 1 or 3 writer threads the restored tree is the same; a bad thread count is refused by name", async () => {
    const keys = await cliKeys();
    const r = await localRepo(join(dir, "threads-cli"), keys);
    for (let i = 0; i < 40; i++) {
      await mkdir(join(r.source, `d${i % 4}`), { recursive: true });
      await writeFile(join(r.source, `d${i % 4}`, `f${i}`), pseudoRandom(1000 + i * 7919, 300 + i));
    }
    const id = await backupId(r);
    const want = await describeTree(r.source);
    for (const threads of ["0", "1", "3"]) {
      const target = join(r.dir, `t${threads}`);
      const out = await vaultik(["restore", r.repo, "", id, target], { env: { VAULTIK_PRIVATE_KEY: r.identity, VAULTIK_RESTORE_WRITERS: threads } });
      expect(out.code, out.stderr).toBe(0);
      expect([...(await describeTree(join(target, r.source.slice(1)))).entries()], `${threads} threads`).toEqual([...want.entries()]);
    }
    const bad = await vaultik(["restore", r.repo, "", id, join(r.dir, "tbad")], { env: { VAULTIK_PRIVATE_KEY: r.identity, VAULTIK_RESTORE_WRITERS: "two" } });
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('VAULTIK_RESTORE_WRITERS: must be a whole number from 0 to 64, got "two"');
  });

  it("a blob with a flipped byte: exit 1, the error names the blob, files from intact blobs are restored, damaged ones are not disguised", async () => {
    const keys = await cliKeys();
    const r = await localRepo(join(dir, "flip"), keys);
    // 1 MiB blobs: 3 MiB of incompressible files fill several.
    for (let i = 0; i < 6; i++) await writeFile(join(r.source, `f${i}.bin`), pseudoRandom(512 * 1024, 200 + i));
    const id = await backupId(r);
    const blobs = await storedBlobs(r);
    expect(blobs.length).toBeGreaterThan(2);
    const victim = join(r.repo, blobKey(blobs[0]!));
    const bytes = await readFile(victim);
    bytes[bytes.length >> 1]! ^= 0x01;
    await writeFile(victim, bytes);
    const target = join(r.dir, "target");
    const out = await vaultik(["restore", r.repo, "", id, target], { env: { VAULTIK_PRIVATE_KEY: r.identity } });
    expect(out.code).toBe(1);
    expect(out.stderr).toContain(blobKey(blobs[0]!));
    const restored = join(target, r.source.slice(1));
    let intact = 0;
    for (let i = 0; i < 6; i++) {
      const original = pseudoRandom(512 * 1024, 200 + i);
      const abs = join(restored, `f${i}.bin`);
      // Restores are exact to the microsecond.
      const micros = (path: string) => statSync(path, { bigint: true }).mtimeNs / 1000n;
      const sourceMtime = micros(join(r.source, `f${i}.bin`));
      if (existsSync(abs) && readFileSync(abs).equals(original)) {
        // Files whose chunks are all in good blobs are exact, with their times.
        expect(micros(abs)).toBe(sourceMtime);
        intact++;
      } else if (existsSync(abs)) {
        // A damaged file is left as it is: never dressed up with the snapshot's time and mode.
        expect(micros(abs)).not.toBe(sourceMtime);
        expect(lstatSync(abs).mode & 0o777).toBe(0o600);
      }
    }
    expect(intact).toBeGreaterThan(0);
    expect(intact).toBeLessThan(6);
  });
});
