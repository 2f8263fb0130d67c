import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, readdirSync, statSync, writeSync } from "node:fs";
import { mkdir, mkdtemp, readFile, rm, truncate, unlink, writeFile } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { runBackup } from "../src/backup/run.js";
import { exitCodeFor } from "../src/cli/exit.js";
import { loadConfig } from "../src/config/index.js";
import { openFsStore } from "../src/store/fs.js";
import { setWriteLayer, type WriteLayer } from "../src/util/fsio.js";
import { processStart } from "../src/util/process.js";
import { vaultik } from "./helpers/cli.js";
import { backupId, cliKeys, copyTree, expectRestores, localRepo, type LocalRepo } from "./helpers/setup.js";
import { pseudoRandom } from "./helpers/tree.js";

// A disk that fills during a backup must fail the run loudly and leave nothing behind that a
// later backup trusts: a short write once published a truncated blob that every later snapshot
// deduplicated against (issue 20).

let keys: { identity: string; recipient: string };
const dirs: string[] = [];
const mounts: string[] = [];

beforeAll(async () => {
  keys = await cliKeys();
});

afterEach(async () => {
  for (const m of mounts.splice(0)) execFileSync("umount", [m]);
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "vaultik-full-"));
  dirs.push(d);
  return d;
}

/** A write layer over the real one with `capacity` bytes left: short writes, then ENOSPC, as the kernel does. */
function diskWithRoom(capacity: number): WriteLayer & { shortWrites: number } {
  let room = capacity;
  const layer = {
    shortWrites: 0,
    async write(fh: FileHandle, data: Uint8Array, offset: number, length: number, position: number | null): Promise<number> {
      if (room === 0) throw Object.assign(new Error("ENOSPC: no space left on device, write"), { code: "ENOSPC" });
      const n = Math.min(length, room);
      if (n < length) layer.shortWrites++;
      room -= n;
      return (await fh.write(data, offset, n, position)).bytesWritten;
    },
    async writev(fh: FileHandle, parts: readonly Uint8Array[]): Promise<number> {
      return layer.write(fh, Buffer.concat(parts), 0, parts.reduce((a, p) => a + p.length, 0), null);
    },
    // The lock file beside the index is on another disk: written as usual.
    writeSync: (fd: number, data: Uint8Array, offset: number, length: number, position: number | null): number =>
      writeSync(fd, data, offset, length, position),
  };
  return layer;
}

function tmpFiles(repo: string): string[] {
  return existsSync(join(repo, ".tmp")) ? readdirSync(join(repo, ".tmp")) : [];
}

async function expectCheckPasses(r: LocalRepo): Promise<void> {
  const out = await vaultik(["check", r.repo, "", "--read-data"], { env: { VAULTIK_PRIVATE_KEY: r.identity } });
  expect(out.code, out.stdout + out.stderr).toBe(0);
}

describe("a full disk under the directory store (injected short writes, any user)", () => {
  it("fails naming the disk, stores nothing partial, and the next backup is whole", async () => {
    const r = await localRepo(await tempDir(), keys);
    await writeFile(join(r.source, "big.bin"), pseudoRandom(3 << 20, 1));
    await writeFile(join(r.source, "small.txt"), "hello\n");
    const config = await loadConfig(r.config);

    // Room for one 1 MiB blob and part of the next.
    const disk = diskWithRoom(1.5 * (1 << 20));
    const restore = setWriteLayer(disk);
    let failure: unknown;
    try {
      await runBackup(config, { store: openFsStore(r.repo) });
    } catch (err) {
      failure = err;
    } finally {
      restore();
    }
    expect(disk.shortWrites, `the disk filled in the middle of a write (${String(failure)})`).toBeGreaterThan(0);
    expect(String(failure)).toMatch(new RegExp(`${r.repo} blobs/.*the disk holding the repository is full \\(ENOSPC\\)`));
    expect(exitCodeFor(failure)).toBe(1);
    expect(tmpFiles(r.repo), "the cut temp file is removed").toEqual([]);
    expect(readdirSync(join(r.dir, "state", "index.sqlite.d")).filter((n) => n.startsWith("snapshot-"))).toEqual([]);

    // Space is back: a backup through the CLI stores everything, and it all reads back.
    const id = await backupId(r);
    await expectCheckPasses(r);
    await expectRestores(r, id, r.source);
  });
});

describe("blobs the catalog knows but the repository lost", () => {
  it("a blob truncated or deleted by hand is uploaded again by the next backup", async () => {
    const r = await localRepo(await tempDir(), keys);
    for (let i = 0; i < 4; i++) await writeFile(join(r.source, `f${i}.bin`), pseudoRandom(900 << 10, 10 + i));
    await backupId(r);
    const blobs = listBlobFiles(r.repo);
    expect(blobs.length).toBeGreaterThanOrEqual(3);
    const cut = blobs[0]!;
    const gone = blobs[1]!;
    await truncate(cut, statSync(cut).size - 100);
    await unlink(gone);

    // Nothing in the source changed: without the check this run would reference both.
    const id = await backupId(r);
    await expectRestores(r, id, r.source);
  });
});

describe("the backup lock", () => {
  it("is taken over from a dead holder whose pid now belongs to an unrelated live process", async () => {
    const r = await localRepo(await tempDir(), keys);
    await writeFile(join(r.source, "a.txt"), "a\n");
    const lockPath = join(r.dir, "state", "index.sqlite.lock");
    await mkdir(join(r.dir, "state"), { recursive: true });
    const stranger = execFileSync("sh", ["-c", "sleep 600 >/dev/null 2>&1 & echo $!"], { encoding: "utf8" }).trim();
    const pid = Number(stranger);
    try {
      const start = processStart(pid)!;
      const host = execFileSync("hostname", { encoding: "utf8" }).trim();
      // The stranger is alive, with the recorded pid but not the recorded start time.
      const stale = { pid, host, started: "2026-01-01T00:00:00.000Z", pidStart: String(Number(start) - 1) };
      await writeFile(lockPath, JSON.stringify(stale));
      const ok = await vaultik(["backup", r.config, "--cron"]);
      expect(ok.code, ok.stderr).toBe(0);
      expect(existsSync(lockPath), "released after the run").toBe(false);

      // The same pid with its real start time is a live holder: the lock holds.
      await writeFile(lockPath, JSON.stringify({ ...stale, pidStart: start }));
      const held = await vaultik(["backup", r.config, "--cron"]);
      expect(held.code).toBe(11);
      expect(held.stderr).toContain(`another vaultik backup is running (pid ${pid}`);
    } finally {
      process.kill(pid, "SIGKILL");
    }
  });
});

describe("leftovers of dead runs", () => {
  it("stale temp files and snapshot databases are removed; a live writer's temp file is kept", async () => {
    const r = await localRepo(await tempDir(), keys);
    await writeFile(join(r.source, "a.txt"), "a\n");
    await backupId(r);
    const host = execFileSync("hostname", { encoding: "utf8" }).trim();
    const tag = createHash("sha256").update(host).digest("hex").slice(0, 8);
    const dead = `${tag}.${2 ** 22 + 17}.12345.00ff`; // above pid_max's default: no such process
    const live = `${tag}.${process.pid}.${processStart(process.pid)!}.00ff`;
    await writeFile(join(r.repo, ".tmp", dead), "partial");
    await writeFile(join(r.repo, ".tmp", live), "in progress");
    const work = join(r.dir, "state", "index.sqlite.d");
    await writeFile(join(work, "snapshot-20260101T000000Z_x_00000000.sqlite"), "half");
    await mkdir(join(work, "spool"), { recursive: true });
    await writeFile(join(work, "spool", "blob-1-00"), "ciphertext");

    await writeFile(join(r.source, "b.txt"), "b\n");
    await backupId(r);
    expect(tmpFiles(r.repo)).toEqual([live]);
    expect(readdirSync(work).filter((n) => n.startsWith("snapshot-") || n === "spool")).toEqual([]);
  });

  it("a backup that fails before reading anything leaves no snapshot database behind", async () => {
    const d = await tempDir();
    const r = await localRepo(d, keys);
    await writeFile(join(r.source, "a.txt"), "a\n");
    // The store's path runs through a regular file: unreachable.
    await writeFile(join(d, "not-a-dir"), "");
    const config = (await readFile(r.config, "utf8")).replace(`store: ${r.repo}`, `store: ${join(d, "not-a-dir", "repo")}`);
    await writeFile(r.config, config);
    for (let i = 0; i < 2; i++) {
      const out = await vaultik(["backup", r.config, "--cron"]);
      expect(out.code).toBe(1);
    }
    expect(readdirSync(join(d, "state", "index.sqlite.d")).filter((n) => n.startsWith("snapshot-"))).toEqual([]);
  });
});

const isRoot = process.getuid?.() === 0;

/** A tmpfs of `size` at a new directory, unmounted after the test (root only, as in CI). */
async function smallDisk(size: string): Promise<string> {
  const at = await tempDir();
  execFileSync("mount", ["-t", "tmpfs", "-o", `size=${size}`, "tmpfs", at]);
  mounts.push(at);
  return at;
}

function resize(at: string, size: string): void {
  execFileSync("mount", ["-o", `remount,size=${size}`, at]);
}

describe.runIf(isRoot)("a real full disk (tmpfs, root)", () => {
  it("under the repository: the run fails, and after space is freed every snapshot restores bit-exact", async () => {
    const d = await tempDir();
    const disk = await smallDisk("20m");
    const r = await localRepo(d, keys);
    const repo = join(disk, "store");
    await writeFile(r.config, (await readFile(r.config, "utf8")).replace(`store: ${r.repo}`, `store: ${repo}`));
    const view: LocalRepo = { ...r, repo };
    await writeFile(join(r.source, "a.bin"), pseudoRandom(40 << 20, 2));

    const full = await vaultik(["backup", r.config, "--cron"]);
    expect(full.code).toBe(1);
    expect(full.stderr).toMatch(new RegExp(`${repo}.*the disk holding the repository is full \\(ENOSPC\\)`));
    resize(disk, "200m");
    const first = await backupId(view);
    const firstTree = copyTree(r.source, join(d, "first"));

    // An incremental run on a disk that fills again.
    await writeFile(join(r.source, "b.bin"), pseudoRandom(30 << 20, 3));
    await writeFile(join(r.source, "c.txt"), "c\n");
    const used = Number(execFileSync("df", ["--output=used", "-B1", disk], { encoding: "utf8" }).split("\n")[1]);
    resize(disk, `${Math.ceil(used / 1024) + 8 * 1024}k`);
    const again = await vaultik(["backup", r.config, "--cron"]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain("is full (ENOSPC)");
    resize(disk, "200m");
    const second = await backupId(view);

    await expectCheckPasses(view);
    await expectRestores(view, first, firstTree);
    await expectRestores(view, second, r.source);
  });

  it("under the local index: the run fails naming the index, and the next one after space is freed succeeds", async () => {
    const d = await tempDir();
    const disk = await smallDisk("4m");
    const r = await localRepo(d, keys);
    const index = join(disk, "index.sqlite");
    await writeFile(r.config, (await readFile(r.config, "utf8")).replace(`index_path: ${d}/state/index.sqlite`, `index_path: ${index}`));
    for (let i = 0; i < 3000; i++) await writeFile(join(r.source, `file-with-a-long-name-${i}.txt`), `${i}\n`);
    // Leave 32 KiB: enough for the lock, not for the index of 3000 files.
    const avail = Number(execFileSync("df", ["--output=avail", "-B1", disk], { encoding: "utf8" }).split("\n")[1]);
    await writeFile(join(disk, "filler"), Buffer.alloc(avail - (32 << 10)));

    const full = await vaultik(["backup", r.config, "--cron"]);
    expect(full.code).toBe(1);
    expect(full.stderr).toContain(index);
    expect(full.stderr).toMatch(/the disk holding vaultik's local index is full \((SQLITE_[A-Z_]+|ENOSPC)\)/);
    await unlink(join(disk, "filler"));
    const id = await backupId(r);
    await expectRestores(r, id, r.source);
  });
});

function listBlobFiles(repo: string): string[] {
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else out.push(p);
    }
  };
  walk(join(repo, "blobs"));
  return out.sort();
}

