import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { vaultik } from "./helpers/cli.js";
import { backupId, cliKeys, copyTree, expectRestores, localRepo, type LocalRepo } from "./helpers/setup.js";
import { pseudoRandom } from "./helpers/tree.js";

// kill -9 at each named point of a backup (VAULTIK_TEST_CRASH_AT, src/util/test-points.ts),
// then a re-run: the re-run completes, and every snapshot, earlier or re-run, restores
// bit-exact. The kill happens at the point itself, not after a guessed delay, so the test is
// the same on an idle machine and on a loaded one.

const KiB = 1024;
let dir: string;
let r: LocalRepo;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-crash-"));
  r = await localRepo(dir, await cliKeys());
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true, maxRetries: 3 });
});

/** New data for a generation (several 1 MiB blobs' worth), and one earlier file changed. */
async function addGeneration(gen: number): Promise<void> {
  const root = join(r.source, `gen${gen}`);
  await mkdir(root, { recursive: true });
  for (let i = 0; i < 3; i++) await writeFile(join(root, `f${i}.bin`), pseudoRandom(700 * KiB + i * 1013, gen * 100 + i));
  for (let i = 0; i < 40; i++) await writeFile(join(root, `small-${i}.txt`), `gen ${gen} file ${i}\n`);
  if (gen > 0) await writeFile(join(r.source, `gen${gen - 1}`, "small-0.txt"), `changed by gen ${gen}\n`);
}

// Every point a backup passes, in order; ":2" is the second time (a second blob). Each point
// is its own test (its own time budget) on the same repository, which grows by a generation.
const POINTS = ["after-blob-put:2", "after-catalog-commit:2", "after-files-commit", "before-snapshot-put", "after-snapshot-put"];
const snapshots: { id: string; copy: string }[] = [];

async function backupGeneration(gen: number): Promise<{ id: string; copy: string }> {
  const s = { id: await backupId(r), copy: copyTree(r.source, join(dir, `copy-${gen}`)) };
  snapshots.push(s);
  return s;
}

describe("kill -9 during backup", () => {
  beforeAll(async () => {
    await addGeneration(0);
    await backupGeneration(0);
  });

  for (const [i, point] of POINTS.entries()) {
    it(`at ${point}: the run dies there, a re-run completes and its snapshot restores bit-exact`, async () => {
      const gen = i + 1;
      await addGeneration(gen);
      const killed = await vaultik(["backup", r.config, "--cron"], { env: { VAULTIK_TEST_CRASH_AT: point } });
      expect(killed.signal, `${point}: ${killed.stderr}`).toBe("SIGKILL");
      const { id, copy } = await backupGeneration(gen);
      await expectRestores(r, id, copy, "library");
    });
  }

  it("every earlier snapshot still restores bit-exact", async () => {
    expect(snapshots).toHaveLength(POINTS.length + 1);
    for (const { id, copy } of snapshots.slice(0, -1)) await expectRestores(r, id, copy, "library");
  });
});
