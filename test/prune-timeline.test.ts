import { mkdir, mkdtemp, readdir, rm, stat, unlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { blobKey } from "../src/pack/names.js";
import { vaultik } from "./helpers/cli.js";
import { backupId, blobsOf, cliKeys, copyTree, expectRestores, localRepo, storedBlobs, type LocalRepo } from "./helpers/setup.js";
import { pseudoRandom } from "./helpers/tree.js";

// Why a prune right after a backup frees nothing, told by prune itself, and when the next prune
// will: the grace period, then the notice, then deletion at a prune after the safety window (the
// window of *that* prune's command line). Time is moved with the hidden --now option; the store's
// own times (file mtimes) stay real, as they would be.

const MiB = 1024 * 1024;
const H = 3600_000;
let dir: string;
let keys: { identity: string; recipient: string };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-prune-timeline-"));
  keys = await cliKeys();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Backups A and B; A forgotten. Returns the blobs only A used (what prune should free) and B. */
async function forgottenSnapshot(r: LocalRepo): Promise<{ doomed: string[]; kept: string; keptCopy: string }> {
  await writeFile(join(r.source, "old.bin"), pseudoRandom(2 * MiB, 1));
  await writeFile(join(r.source, "stays.bin"), pseudoRandom(MiB, 2));
  const a = await backupId(r);
  await unlink(join(r.source, "old.bin"));
  const b = await backupId(r);
  const onlyB = await blobsOf(r, b);
  const doomed = (await blobsOf(r, a)).filter((x) => !onlyB.includes(x));
  expect(doomed.length).toBeGreaterThan(0);
  const f = await vaultik(["forget", r.repo, "", a]);
  expect(f.code, f.stderr).toBe(0);
  return { doomed, kept: b, keptCopy: copyTree(r.source, join(r.dir, "copy-b")) };
}

function prune(r: LocalRepo, ...args: string[]) {
  return vaultik(["prune", r.repo, "", ...args], { env: { VAULTIK_PRIVATE_KEY: r.identity } });
}

/** A time as prune prints it: whole seconds, rounded up so "after" holds. */
function shown(ms: number): string {
  return new Date(Math.ceil(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

async function mtimeOf(path: string): Promise<number> {
  return (await stat(path)).mtime.getTime();
}

async function pendingNotices(r: LocalRepo): Promise<string[]> {
  const d = join(r.repo, "prune", "pending");
  return (await readdir(d).catch(() => [] as string[])).map((n) => join(d, n));
}

describe("prune says when it will free space", () => {
  it("right after a backup: grace period, then a notice, then deletion after the safety window", async () => {
    const r = await localRepo(join(dir, "timeline"), keys);
    const { doomed, kept, keptCopy } = await forgottenSnapshot(r);
    const newest = Math.max(...(await Promise.all(doomed.map((b) => mtimeOf(join(r.repo, ...blobKey(b).split("/")))))));

    // 1. Right away: everything is inside the 24 h grace period. Prune says when a prune will announce it.
    const first = await prune(r);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toContain("deleted 0 blob(s)");
    expect(first.stdout).toContain(
      `${doomed.length} unreferenced blob(s)`,
    );
    expect(first.stdout).toContain(`within the grace period (1d): a prune from ${shown(newest + 24 * H)} announces them`);
    expect(await pendingNotices(r)).toEqual([]);

    // 2. 25 hours later: announced, with the time from which a prune deletes them. The notice
    // carries the store's time of publication (real time here); later steps count from it.
    const later = new Date(newest + 25 * H).toISOString();
    const second = await prune(r, "--now", later, "--json");
    expect(second.code, second.stderr).toBe(0);
    const report = JSON.parse(second.stdout) as { blobsDeleted: number; blobsAnnounced: number; deferred: { blobs: number; deletableAfter?: string }[] };
    expect(report).toMatchObject({ blobsDeleted: 0, blobsAnnounced: doomed.length });
    const [notice] = await pendingNotices(r);
    const published = await mtimeOf(notice!);
    expect(report.deferred).toEqual([expect.objectContaining({ blobs: doomed.length, deletableAfter: new Date(published + H).toISOString() })]);
    for (const x of doomed) expect(await storedBlobs(r)).toContain(x);

    // Half an hour after the notice (store time), as a person reads it.
    const again = await prune(r, "--now", new Date(published + H / 2).toISOString());
    expect(again.code, again.stderr).toBe(0);
    expect(again.stdout).toContain(`${doomed.length} blob(s) will be deletable after ${shown(published + H)}; run prune again then`);

    // 3. After the window: deleted; the kept snapshot restores.
    const third = await prune(r, "--now", new Date(published + H + 1000).toISOString(), "--json");
    expect(third.code, third.stderr).toBe(0);
    expect(JSON.parse(third.stdout)).toMatchObject({ blobsDeleted: doomed.length, deferred: [] });
    const left = await storedBlobs(r);
    for (const x of doomed) expect(left).not.toContain(x);
    await expectRestores(r, kept, keptCopy);
  });

  it("a second prune with --safety-window 0s deletes what the first announced", async () => {
    const r = await localRepo(join(dir, "window-0"), keys);
    const { doomed, kept, keptCopy } = await forgottenSnapshot(r);
    const announce = await prune(r, "--grace", "0s", "--json");
    expect(announce.code, announce.stderr).toBe(0);
    expect(JSON.parse(announce.stdout)).toMatchObject({ blobsDeleted: 0, blobsAnnounced: doomed.length });

    const del = await prune(r, "--safety-window", "0s", "--json");
    expect(del.code, del.stderr).toBe(0);
    expect(JSON.parse(del.stdout)).toMatchObject({ blobsDeleted: doomed.length, deferred: [] });
    const left = await storedBlobs(r);
    for (const x of doomed) expect(left).not.toContain(x);
    expect(await pendingNotices(r)).toEqual([]);
    await expectRestores(r, kept, keptCopy);
  });

  it("--safety-window 0s still waits for a backup that started before the notice and is running", async () => {
    const r = await localRepo(join(dir, "running"), keys);
    const { doomed, kept, keptCopy } = await forgottenSnapshot(r);
    const announce = await prune(r, "--grace", "0s", "--json");
    expect(JSON.parse(announce.stdout)).toMatchObject({ blobsAnnounced: doomed.length });
    const [notice] = await pendingNotices(r);
    const published = await mtimeOf(notice!);

    // A backup on another host wrote its first heartbeat just before the notice appeared (so it
    // read the notices before this one and may deduplicate against the announced blobs), and
    // beats still. These are the objects a running backup writes (docs/FORMAT.md §6).
    const run = "20261127T120000Z_otherhost_0badf00d";
    const runDir = join(r.repo, "runs", run);
    await mkdir(runDir, { recursive: true });
    const beat = join(runDir, `${published - 1000}.json`);
    await writeFile(beat, JSON.stringify({ snapshot: run, host: "otherhost", time: new Date(published - 1000).toISOString() }));
    await utimes(beat, new Date(published - 1000), new Date(published - 1000));

    const held = await prune(r, "--safety-window", "0s");
    expect(held.code, held.stderr).toBe(0);
    expect(held.stdout).toContain("deleted 0 blob(s)");
    expect(held.stdout).toContain(`${doomed.length} blob(s) wait for backup ${run}, which started before they were announced; run prune again after it ends`);
    for (const x of doomed) expect(await storedBlobs(r)).toContain(x);

    // The backup ends (its end marker; it failed, so no snapshot): now they go.
    await writeFile(join(runDir, "done.json"), JSON.stringify({ snapshot: run, host: "otherhost" }));
    const del = await prune(r, "--safety-window", "0s", "--json");
    expect(del.code, del.stderr).toBe(0);
    expect(JSON.parse(del.stdout)).toMatchObject({ blobsDeleted: doomed.length });
    await expectRestores(r, kept, keptCopy);
  });
});
