import { readdirSync, statSync } from "node:fs";
import { readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { vaultik } from "./helpers/cli.js";
import { mirrorToS3rver, s3rverCliEnv, startS3rver, type S3rverHandle } from "./helpers/s3rver.js";
import { Repository } from "../src/repo/repository.js";
import { SnapshotCache } from "../src/snapshot/cache.js";
import { withSnapshot } from "../src/snapshot/open.js";
import { openFsStore } from "../src/store/fs.js";
import { parseIdentity } from "../src/crypto/keys.js";
import { setWriteLayer } from "../src/util/fsio.js";
import { backupAt, cliKeys, localRepo, type LocalRepo } from "./helpers/setup.js";
import { useTempDirs } from "./helpers/temp.js";

// The local cache of decrypted snapshot databases (issue 16): a second command reading the same
// snapshot downloads nothing; a damaged entry is fetched again, never read; the cache stays
// private and within its size.

const tempDir = useTempDirs("vaultik-cache-");
let server: S3rverHandle;
let keys: { identity: string; recipient: string };
let r: LocalRepo;
const ids: string[] = [];

beforeAll(async () => {
  server = await startS3rver();
  keys = await cliKeys();
});
afterAll(async () => server?.close());

/** A repository of three snapshots mirrored to s3rver under a fresh prefix. */
async function setup(): Promise<string> {
  const dir = await tempDir();
  r = await localRepo(dir, keys);
  ids.length = 0;
  for (let i = 0; i < 3; i++) {
    await writeFile(join(r.source, `file-${i}.txt`), `content ${i}\n`.repeat(100));
    ids.push(await backupAt(r, Date.UTC(2026, 10, 1 + i)));
  }
  const prefix = `p${Math.random().toString(36).slice(2, 8)}`;
  await mirrorToS3rver(r.repo, server, prefix);
  return prefix;
}

function env(cacheDir: string, extra: Record<string, string> = {}): Record<string, string> {
  return { ...s3rverCliEnv(server), VAULTIK_PRIVATE_KEY: keys.identity, VAULTIK_CACHE_DIR: cacheDir, ...extra };
}

/** GETs of snapshot databases (index/…) since `from` reads. */
async function snapshotGets(from: number): Promise<string[]> {
  return (await server.settledReads()).slice(from).filter((q) => q.startsWith("GET ") && q.includes("/index/") && q.split("?")[0]!.endsWith(".sqlite.zst.age"));
}

function cacheFiles(cacheDir: string): string[] {
  return readdirSync(join(cacheDir, "snapshots")).sort();
}

describe("snapshot cache", () => {
  it("a second `snapshots` downloads no snapshot database; the cache is private", async () => {
    const prefix = await setup();
    const cacheDir = join(await tempDir(), "cache");
    let mark = (await server.settledReads()).length;
    const first = await vaultik(["snapshots", server.bucket, prefix, "--json"], { env: env(cacheDir) });
    expect(first.code, first.stderr).toBe(0);
    expect(await snapshotGets(mark)).toHaveLength(3);
    mark = (await server.settledReads()).length;
    const second = await vaultik(["snapshots", server.bucket, prefix, "--json"], { env: env(cacheDir) });
    expect(second.code, second.stderr).toBe(0);
    expect(await snapshotGets(mark)).toEqual([]);
    expect(second.stdout).toBe(first.stdout);
    expect(JSON.parse(second.stdout).map((s: { files: number }) => s.files)).toEqual([1, 2, 3]);
    // 0700 directories, 0600 files, one database and one checksum per snapshot, no temp left.
    for (const d of [cacheDir, join(cacheDir, "snapshots")]) expect(statSync(d).mode & 0o777).toBe(0o700);
    const files = cacheFiles(cacheDir);
    expect(files.filter((f) => f.endsWith(".sqlite"))).toHaveLength(3);
    expect(files.filter((f) => f.endsWith(".sha256"))).toHaveLength(3);
    expect(files.filter((f) => f.startsWith("."))).toEqual([]);
    for (const f of files) expect(statSync(join(cacheDir, "snapshots", f)).mode & 0o077).toBe(0);
  });

  it("a second `ls` of a snapshot downloads nothing, nor do diff, find, dump and restore of it after", async () => {
    const prefix = await setup();
    const cacheDir = join(await tempDir(), "cache");
    const repoArgs = [server.bucket, prefix];
    let mark = (await server.settledReads()).length;
    const first = await vaultik(["ls", ...repoArgs, ids[2]!, "-R"], { env: env(cacheDir) });
    expect(first.code, first.stderr).toBe(0);
    expect(await snapshotGets(mark)).toHaveLength(1);
    mark = (await server.settledReads()).length;
    const second = await vaultik(["ls", ...repoArgs, ids[2]!, "-R"], { env: env(cacheDir) });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toBe(first.stdout);
    expect(second.stdout).toContain(`${r.source}/file-2.txt\n`);
    const target = join(await tempDir(), "restored");
    for (const args of [
      ["find", server.bucket, "--prefix", prefix, "file-2.txt", "--snapshot", ids[2]!],
      ["diff", ...repoArgs, ids[2]!, ids[2]!],
      ["dump", ...repoArgs, ids[2]!, `${r.source}/file-2.txt`],
      ["restore", ...repoArgs, ids[2]!, target],
    ]) {
      const out = await vaultik(args, { env: env(cacheDir) });
      expect(out.code, `${args[0]}: ${out.stderr}`).toBe(0);
    }
    expect(await snapshotGets(mark)).toEqual([]);
    expect(await readFile(join(target, r.source, "file-2.txt"), "utf8")).toBe("content 2\n".repeat(100));
  });

  it("a damaged entry is detected, fetched again and replaced, never read", async () => {
    const prefix = await setup();
    const cacheDir = join(await tempDir(), "cache");
    const first = await vaultik(["snapshots", server.bucket, prefix, "--json"], { env: env(cacheDir) });
    expect(first.code, first.stderr).toBe(0);
    // Damage one entry the way a bad disk would: same size, other bytes (its file count).
    const dbs = cacheFiles(cacheDir).filter((f) => f.endsWith(".sqlite"));
    const victim = join(cacheDir, "snapshots", dbs[0]!);
    const good = await readFile(victim);
    const bad = Buffer.from(good);
    const at = bad.length - 100;
    bad[at] = bad[at]! ^ 0xff;
    await writeFile(victim, bad);
    const mark = (await server.settledReads()).length;
    const second = await vaultik(["snapshots", server.bucket, prefix, "--json"], { env: env(cacheDir) });
    expect(second.code, second.stderr).toBe(0);
    expect(second.stdout).toBe(first.stdout);
    expect(await snapshotGets(mark)).toHaveLength(1);
    expect(await readFile(victim)).toEqual(good);
    // A truncated entry too.
    await writeFile(victim, good.subarray(0, 4096));
    const mark2 = (await server.settledReads()).length;
    const third = await vaultik(["snapshots", server.bucket, prefix, "--json"], { env: env(cacheDir) });
    expect(third.stdout).toBe(first.stdout);
    expect(await snapshotGets(mark2)).toHaveLength(1);
  });

  it("another key does not read what the cache holds: a wrong key still fails (exit 12)", async () => {
    const prefix = await setup();
    const cacheDir = join(await tempDir(), "cache");
    const first = await vaultik(["snapshots", server.bucket, prefix, "--json"], { env: env(cacheDir) });
    expect(first.code, first.stderr).toBe(0);
    const other = await cliKeys();
    const wrong = await vaultik(["snapshots", server.bucket, prefix, "--json"], { env: env(cacheDir, { VAULTIK_PRIVATE_KEY: other.identity }) });
    expect(wrong.code).toBe(12);
    expect(JSON.parse(wrong.stdout).map((s: { status: string }) => s.status)).toEqual(["wrong_key", "wrong_key", "wrong_key"]);
  });

  it("--no-cache downloads every time and writes no cache", async () => {
    const prefix = await setup();
    const cacheDir = join(await tempDir(), "cache");
    for (let i = 0; i < 2; i++) {
      const mark = (await server.settledReads()).length;
      const out = await vaultik(["snapshots", server.bucket, prefix, "--json", "--no-cache"], { env: env(cacheDir) });
      expect(out.code, out.stderr).toBe(0);
      expect(await snapshotGets(mark)).toHaveLength(3);
    }
    expect(() => statSync(cacheDir)).toThrow(/ENOENT/);
  });

  it("stays within VAULTIK_CACHE_SIZE, keeping the most recently used entries", async () => {
    const prefix = await setup();
    const cacheDir = join(await tempDir(), "cache");
    // Measure one database, then allow two and a half of them.
    const probe = await vaultik(["snapshots", server.bucket, prefix, "--json"], { env: env(cacheDir) });
    expect(probe.code, probe.stderr).toBe(0);
    const sizes = cacheFiles(cacheDir).filter((f) => f.endsWith(".sqlite")).map((f) => statSync(join(cacheDir, "snapshots", f)).size);
    const limit = Math.floor(Math.max(...sizes) * 2.5);
    const small = join(await tempDir(), "small");
    const out = await vaultik(["snapshots", server.bucket, prefix, "--json"], { env: env(small, { VAULTIK_CACHE_SIZE: String(limit) }) });
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toBe(probe.stdout);
    const kept = cacheFiles(small).filter((f) => f.endsWith(".sqlite"));
    expect(kept).toHaveLength(2);
    expect(kept.reduce((n, f) => n + statSync(join(small, "snapshots", f)).size, 0)).toBeLessThanOrEqual(limit);
    // The two kept are the last two read (snapshots reads oldest first): the newest is not
    // downloaded again, the oldest is.
    for (const [i, gets] of [[2, 0], [0, 1]] as const) {
      const mark = (await server.settledReads()).length;
      const ls = await vaultik(["ls", server.bucket, prefix, ids[i]!], { env: env(small, { VAULTIK_CACHE_SIZE: String(limit) }) });
      expect(ls.code, ls.stderr).toBe(0);
      expect(await snapshotGets(mark)).toHaveLength(gets);
    }
  });

  it("a cache directory it cannot use is passed over: the command still works", async () => {
    const prefix = await setup();
    const notADir = join(await tempDir(), "file");
    await writeFile(notADir, "x");
    const out = await vaultik(["snapshots", server.bucket, prefix, "--json"], { env: env(notADir) });
    expect(out.code, out.stderr).toBe(0);
    expect(JSON.parse(out.stdout)).toHaveLength(3);
    expect(await readFile(notADir, "utf8")).toBe("x");
  });

  it("a full disk under the cache: the command reads the snapshot without it, and leaves nothing there", async () => {
    await setup();
    const cacheDir = join(await tempDir(), "cache");
    const cache = SnapshotCache.open(cacheDir)!;
    const repo = new Repository(openFsStore(r.repo));
    const snap = (await repo.listSnapshots())[2]!;
    const identities = [parseIdentity(keys.identity)];
    let writes = 0;
    const full = Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC", syscall: "write" });
    const restore = setWriteLayer({
      // The first write (into the cache) finds the disk full; the plain download after it does not.
      write: async (fh, data, offset, length, position) => {
        if (writes++ === 0) throw full;
        return (await fh.write(data, offset, length, position)).bytesWritten;
      },
      writev: async (fh, parts) => (await fh.writev(parts as Uint8Array[])).bytesWritten,
      writeSync: () => {
        throw full;
      },
    });
    let files: number | undefined;
    try {
      files = await withSnapshot(repo, snap, identities, async (reader) => reader.stats?.files, undefined, { cache });
    } finally {
      restore();
    }
    expect(writes).toBeGreaterThan(1);
    expect(files).toBe(3);
    expect(cacheFiles(cacheDir)).toEqual([]);
    // With room again, the next read fills the cache.
    expect(await withSnapshot(repo, snap, identities, async (reader) => reader.stats?.files, undefined, { cache })).toBe(3);
    expect(cacheFiles(cacheDir).filter((f) => f.endsWith(".sqlite"))).toHaveLength(1);
  });
});
