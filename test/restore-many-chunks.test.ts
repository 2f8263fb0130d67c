import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterEach, beforeAll, expect, it, vi } from "vitest";
import { parseIdentity } from "../src/crypto/keys.js";
import { Repository } from "../src/repo/repository.js";
import { withSnapshot } from "../src/snapshot/open.js";
import { openFsStore } from "../src/store/fs.js";
import { vaultik } from "./helpers/cli.js";
import { craftManyRefs } from "./helpers/craft-refs.js";
import { vaultikPeakRss } from "./helpers/hostile.js";
import { cliKeys, localRepo } from "./helpers/setup.js";
import { placementsOf } from "./helpers/plans.js";

// Restore, fetch and check are linear in a file's chunk references (issue 14 item 3). Before,
// each placement row counted its file's chunks again: a file of n chunks cost n² steps, and
// 20,000 references took 54 s to plan (100,000: about 20 minutes).

let keys: { identity: string; recipient: string };
const dirs: string[] = [];
beforeAll(async () => {
  keys = await cliKeys();
});
afterEach(async () => {
  vi.restoreAllMocks();
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), "vaultik-manychunks-"));
  dirs.push(d);
  return d;
}

it("a crafted file of 100,000 chunk references restores (under 256 MB peak RSS), fetches and checks bit-exact", async () => {
  const dir = await tempDir();
  const r = await localRepo(dir, keys);
  const refs = 100_000;
  const c = await craftManyRefs(r, keys.recipient, [{ name: "big.bin", refs }]);
  const want = Buffer.concat(Array.from({ length: refs }, () => c.seed));
  const env = { VAULTIK_PRIVATE_KEY: r.identity };

  // A crafted input like any other: memory stays bounded however often a file repeats a chunk.
  const restore = await vaultikPeakRss(["restore", r.repo, "", c.id, join(dir, "out")], { env });
  expect(restore.code, restore.stderr).toBe(0);
  expect(restore.peakRss).toBeLessThan(256 * 1024 * 1024);
  expect((await readFile(join(dir, "out", c.paths.get("big.bin")!))).equals(want)).toBe(true);

  const fetch = await vaultik(["fetch", r.repo, "", c.id, c.paths.get("big.bin")!, "-"], { env });
  expect(fetch.code, fetch.stderr).toBe(0);
  expect(fetch.stdoutBytes.equals(want)).toBe(true);

  const check = await vaultik(["check", r.repo, "", "--read-data"], { env });
  expect(check.code, check.stdout + check.stderr).toBe(0);
});

it("the placement queries have no correlated subquery (one per chunk row made them quadratic)", async () => {
  const dir = await tempDir();
  const r = await localRepo(dir, keys);
  const c = await craftManyRefs(r, keys.recipient, [{ name: "a.bin", refs: 3 }, { name: "b.bin", refs: 5 }]);
  const repo = new Repository(openFsStore(r.repo));
  const snapshot = await repo.findSnapshot(c.id);
  // Every statement the reader prepares, with the connection it runs on, to ask SQLite for its plan.
  const prepared: { db: Database.Database; sql: string }[] = [];
  const prepare = Database.prototype.prepare;
  vi.spyOn(Database.prototype, "prepare").mockImplementation(function (this: Database.Database, sql: string) {
    prepared.push({ db: this, sql });
    return prepare.call(this, sql);
  });
  await withSnapshot(repo, snapshot, [parseIdentity(r.identity)], async (reader) => {
    const offsets = (p?: string) => placementsOf(reader, p).map((x) => [x.path, x.fileOffset, x.fileChunks]);
    expect(offsets(c.paths.get("a.bin"))).toEqual([0, 1, 2].map((i) => [c.paths.get("a.bin"), i * c.seed.length, 3]));
    expect(offsets()).toHaveLength(8);
    const plans = prepared
      .filter((s) => /\bfile_chunks\b/.test(s.sql))
      .map(({ db, sql }) => {
        const params = (sql.match(/\?/g) ?? []).length;
        const rows = prepare.call(db, `EXPLAIN QUERY PLAN ${sql}`).all(Array<null>(params).fill(null)) as { detail: string }[];
        return { sql, plan: rows.map((row) => row.detail).join("\n") };
      });
    // The frame plan, the one-row file lookup (its chunk count runs once per file, not per
    // chunk), and the flaws check.
    expect(plans).toHaveLength(3);
    for (const { sql, plan } of plans) {
      if (/WHERE id = \?/.test(sql)) expect(plan).toMatch(/SEARCH f USING INTEGER PRIMARY KEY/);
      else expect(plan).not.toMatch(/CORRELATED/);
    }
  });
});
