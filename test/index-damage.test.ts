import { existsSync, readdirSync } from "node:fs";
import { mkdir, readFile, truncate, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import Database from "better-sqlite3";
import { beforeAll, describe, expect, it } from "vitest";
import { runBackup } from "../src/backup/run.js";
import { loadConfig } from "../src/config/index.js";
import { LocalStateError } from "../src/errors.js";
import { openFsStore } from "../src/store/fs.js";
import { writeAllSync } from "../src/util/fsio.js";
import { vaultik } from "./helpers/cli.js";
import { useTempDirs } from "./helpers/temp.js";
import { cliKeys, copyTree, expectRestores, localRepo, type LocalRepo } from "./helpers/setup.js";
import { pseudoRandom } from "./helpers/tree.js";
import { closeSync, openSync } from "node:fs";

// A damaged local index (a disk error, a copy cut short, a stray write) must not stop every
// backup with a bare SQLITE_NOTADB that names no file: it is named, moved aside for the user,
// and rebuilt, and the backup goes on (issue 14 item 8). A path where no index can ever be made
// (under /proc) is an error that names it, not a mkdir loop at 100% CPU.

let keys: { identity: string; recipient: string };
const tempDir = useTempDirs("vaultik-idxdmg-");

beforeAll(async () => {
  keys = await cliKeys();
});

async function backedUp(): Promise<{ r: LocalRepo; index: string; frozen: string }> {
  const dir = await tempDir();
  const r = await localRepo(dir, keys);
  // Enough files that the index spans many pages, so a page in the middle holds rows.
  for (let i = 0; i < 300; i++) {
    await mkdir(join(r.source, `d${i % 7}`), { recursive: true });
    await writeFile(join(r.source, `d${i % 7}`, `file-${i}.txt`), `content of file ${i}\n`.repeat(1 + (i % 13)));
  }
  await writeFile(join(r.source, "big.bin"), pseudoRandom(300_000, 3));
  const first = await vaultik(["backup", r.config, "--json"]);
  expect(first.code, first.stderr).toBe(0);
  return { r, index: join(dir, "state", "index.sqlite"), frozen: copyTree(r.source, join(dir, "frozen")) };
}

function overwrite(path: string, position: number, bytes: Buffer): void {
  const fd = openSync(path, "r+");
  try {
    writeAllSync(fd, bytes, position);
  } finally {
    closeSync(fd);
  }
}

const damagedBeside = (index: string) => readdirSync(dirname(index)).filter((n) => n.startsWith("index.sqlite.damaged-"));

/** The next backup warns naming the index and where it went, keeps the damaged bytes, and makes a whole snapshot. */
async function expectRebuilt(r: LocalRepo, index: string, frozen: string, damaged: Buffer): Promise<void> {
  const out = await vaultik(["backup", r.config, "--json"]);
  expect(out.code, out.stderr).toBe(0);
  const aside = damagedBeside(index);
  expect(aside).toHaveLength(1);
  const moved = join(dirname(index), aside[0]!);
  expect(out.stderr).toContain(`local index ${index} is damaged`);
  expect(out.stderr).toContain(moved);
  expect(await readFile(moved)).toEqual(damaged);
  // The new index is whole and holds this run's work.
  const db = new Database(index, { readonly: true });
  try {
    expect(db.pragma("quick_check", { simple: true })).toBe("ok");
    expect(db.prepare("SELECT count(*) FROM entries WHERE type = 'file'").pluck().get()).toBe(301);
  } finally {
    db.close();
  }
  const id = (JSON.parse(out.stdout) as { snapshotId: string }).snapshotId;
  await expectRestores(r, id, frozen, "library");
}

describe("a damaged local index", () => {
  it("garbage bytes: named, moved aside, rebuilt, and the backup completes", async () => {
    const { r, index, frozen } = await backedUp();
    const garbage = pseudoRandom(64 * 1024, 9);
    await writeFile(index, garbage);
    await expectRebuilt(r, index, frozen, garbage);
  });

  it("truncated to the first half of a real index: the same", async () => {
    const { r, index, frozen } = await backedUp();
    const whole = await readFile(index);
    await truncate(index, whole.length / 2);
    await expectRebuilt(r, index, frozen, whole.subarray(0, whole.length / 2));
  });

  it("one page in the middle overwritten: the same", async () => {
    const { r, index, frozen } = await backedUp();
    const whole = await readFile(index);
    const pageSize = whole.readUInt16BE(16);
    const pages = whole.length / pageSize;
    expect(pages).toBeGreaterThan(8);
    const middle = Math.floor(pages / 2);
    overwrite(index, middle * pageSize, pseudoRandom(pageSize, 11));
    await expectRebuilt(r, index, frozen, await readFile(index));
  });

  it("damage found during a run (SQLITE_CORRUPT mid-run) fails naming the index, moves it aside, and the next run rebuilds", async () => {
    const { r, index, frozen } = await backedUp();
    await writeFile(join(r.source, "new.txt"), "new content\n");
    const config = await loadConfig(r.config);
    const whole = await readFile(index);
    const pageSize = whole.readUInt16BE(16);
    const err = await runBackup(config, {
      store: openFsStore(r.repo),
      hooks: {
        // The index opened whole; now the disk under it goes bad.
        afterHeartbeat: async () => {
          for (let p = 1; p * pageSize < whole.length; p++) overwrite(index, p * pageSize, pseudoRandom(pageSize, 100 + p));
          overwrite(index, 0, pseudoRandom(100, 7));
        },
      },
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(LocalStateError);
    expect((err as Error).message).toContain(index);
    expect((err as Error).message).toMatch(/damaged/);
    expect(damagedBeside(index)).toHaveLength(1);
    expect(existsSync(index)).toBe(false);
    await copyTree(join(r.source, "new.txt"), join(frozen, "new.txt"));
    const out = await vaultik(["backup", r.config, "--json"]);
    expect(out.code, out.stderr).toBe(0);
    await expectRestores(r, (JSON.parse(out.stdout) as { snapshotId: string }).snapshotId, frozen, "library");
  });
});

describe("an index path where no index can be made", () => {
  for (const path of ["/proc/self/vaultik/index.sqlite", "/proc/1/x/index.sqlite"]) {
    it(`${path}: a LocalStateError naming it, exit 1, promptly`, async () => {
      const dir = await tempDir();
      const r = await localRepo(dir, keys);
      await writeFile(join(r.source, "f.txt"), "x");
      await writeFile(r.config, (await readFile(r.config, "utf8")).replace(/^index_path: .*$/m, `index_path: ${path}`));
      // A safety net for a loaded machine, not a timing assertion: the bug was an endless loop.
      const out = await vaultik(["backup", r.config], { timeoutMs: 60_000 });
      expect(out.code, out.stderr).toBe(1);
      expect(out.stderr).toContain(dirname(path));
      expect(out.stderr).toMatch(/cannot create/);
    });
  }
});
