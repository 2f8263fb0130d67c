import { cp, mkdir, mkdtemp, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { blobKey } from "../src/repo/layout.js";
import { vaultik } from "./helpers/cli.js";
import { backupAt, backupId, blobsOf, cliKeys, copyTree, expectRestores, localRepo, storedBlobs } from "./helpers/setup.js";
import { pseudoRandom } from "./helpers/tree.js";

// Prune is where backup tools lose data. These tests run the real binary against a directory
// repository: forget + prune frees exactly what it should, a stale index or a notice read by a
// backup keeps it from referencing a deleted blob, a held lock exits 11, and check names what is
// damaged. The interleavings of backups and prunes (and prunes killed at every write) are
// forced in-process, one exact outcome each, in prune-races.test.ts.

const MiB = 1024 * 1024;
let dir: string;
let keys: { identity: string; recipient: string };

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-prune-"));
  keys = await cliKeys();
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const FAST = ["--grace", "0s", "--safety-window", "0s"];

const HOURS_AGO = (h: number): number => Date.now() - h * 3600_000;

function withKey(identity: string) {
  return { env: { VAULTIK_PRIVATE_KEY: identity } };
}

describe("forget and prune", () => {
  it("backup A, B, C; forget B; prune: A and C restore, blobs only B used are gone", async () => {
    const r = await localRepo(join(dir, "abc"), keys);
    await writeFile(join(r.source, "common.bin"), pseudoRandom(3 * MiB, 1));
    const a = await backupId(r);
    const copyA = copyTree(r.source, join(r.dir, "copy-a"));
    await writeFile(join(r.source, "only-b.bin"), pseudoRandom(2 * MiB, 2));
    const b = await backupId(r);
    await unlink(join(r.source, "only-b.bin"));
    await writeFile(join(r.source, "c.bin"), pseudoRandom(2 * MiB, 3));
    const c = await backupId(r);
    const copyC = copyTree(r.source, join(r.dir, "copy-c"));

    const [blobsA, blobsB, blobsC] = [await blobsOf(r, a), await blobsOf(r, b), await blobsOf(r, c)];
    const onlyB = blobsB.filter((x) => !blobsA.includes(x) && !blobsC.includes(x));
    expect(onlyB.length).toBeGreaterThan(0);

    const f = await vaultik(["forget", r.repo, "", b]);
    expect(f.code, f.stderr).toBe(0);
    // Inside the default 24 h grace period nothing is deleted.
    const cautious = await vaultik(["prune", r.repo, "", "--json"], withKey(r.identity));
    expect(cautious.code, cautious.stderr).toBe(0);
    expect(JSON.parse(cautious.stdout)).toMatchObject({ blobsDeleted: 0, blobsYoung: onlyB.length });
    for (const x of onlyB) expect(await storedBlobs(r)).toContain(x);

    const p = await vaultik(["prune", r.repo, "", ...FAST, "--json"], withKey(r.identity));
    expect(p.code, p.stderr).toBe(0);
    expect(JSON.parse(p.stdout)).toMatchObject({ blobsDeleted: onlyB.length });
    const left = await storedBlobs(r);
    for (const x of onlyB) expect(left).not.toContain(x);
    for (const x of [...blobsA, ...blobsC]) expect(left).toContain(x);
    await expectRestores(r, a, copyA);
    await expectRestores(r, c, copyC);
  });

  it("--dry-run prints what would go and changes nothing; the policy says what each rule keeps", async () => {
    const r = await localRepo(join(dir, "dry"), keys);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      await writeFile(join(r.source, `f${i}.bin`), pseudoRandom(MiB, 10 + i));
      ids.push(await backupAt(r, HOURS_AGO(3 - i)));
    }
    const before = await storedBlobs(r);
    const d = await vaultik(["prune", r.repo, "", "--keep-last", "1", ...FAST, "--dry-run"], withKey(r.identity));
    expect(d.code, d.stderr).toBe(0);
    expect(d.stdout).toContain("dry run");
    expect(d.stdout).toMatch(new RegExp(`keep-last keeps 1: ${ids[2]}`));
    expect(d.stdout).toContain(`would forget 2 snapshot(s): ${ids[1]}, ${ids[0]}`);
    expect(await storedBlobs(r)).toEqual(before);
    const list = await vaultik(["snapshots", r.repo, "", "--json"]);
    expect((JSON.parse(list.stdout) as unknown[]).length).toBe(3);
  });

  it("retention comes from the config's retention: section when no flag is given", async () => {
    const r = await localRepo(join(dir, "cfg-retention"), keys, "retention:\n  keep_last: 1\n");
    await writeFile(join(r.source, "x.bin"), pseudoRandom(MiB, 40));
    await backupAt(r, HOURS_AGO(2));
    await writeFile(join(r.source, "y.bin"), pseudoRandom(MiB, 41));
    const newest = await backupAt(r, HOURS_AGO(1));
    const p = await vaultik(["prune", "--config", r.config, ...FAST, "--json"], withKey(r.identity));
    expect(p.code, p.stderr).toBe(0);
    const report = JSON.parse(p.stdout) as { policy: string; kept: { id: string; reasons: string[] }[] };
    expect(report.policy).toBe("keep-last 1");
    expect(report.kept).toEqual([{ id: newest, reasons: ["last 1/1"] }]);
  });
});

describe("prune and backups that do not know about it", () => {
  it("a source with an old index backs up after prune deleted blobs it had indexed", async () => {
    const r = await localRepo(join(dir, "stale-index"), keys);
    await writeFile(join(r.source, "keep.bin"), pseudoRandom(3 * MiB, 20));
    const first = await backupId(r);
    const oldIndex = join(r.dir, "old-index.sqlite");
    await cp(join(r.dir, "state", "index.sqlite"), oldIndex);
    const forgotten = await blobsOf(r, first);

    // Another machine forgets the only snapshot and prunes: every blob of it goes. With no
    // snapshot left, prune refuses until told that this is really meant.
    expect((await vaultik(["forget", r.repo, "", first])).code).toBe(0);
    const refused = await vaultik(["prune", r.repo, "", ...FAST], withKey(r.identity));
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/no snapshots under .* but \d+ blobs exist.*--force/);
    for (const x of forgotten) expect(await storedBlobs(r)).toContain(x);
    const p = await vaultik(["prune", r.repo, "", ...FAST, "--force"], withKey(r.identity));
    expect(p.code, p.stderr).toBe(0);
    for (const x of forgotten) expect(await storedBlobs(r)).not.toContain(x);

    // The source comes back with its days-old index, which still lists those blobs.
    await rm(join(r.dir, "state"), { recursive: true });
    await cp(oldIndex, join(r.dir, "state", "index.sqlite"), { recursive: true });
    const second = await backupId(r);
    await expectRestores(r, second, r.source);
  });

  it("a backup that reads a prune notice re-uploads the announced chunks instead of referencing them", async () => {
    const r = await localRepo(join(dir, "notice"), keys);
    await writeFile(join(r.source, "data.bin"), pseudoRandom(3 * MiB, 30));
    const first = await backupId(r);
    const doomed = await blobsOf(r, first);
    expect((await vaultik(["forget", r.repo, "", first])).code).toBe(0);
    // A long safety window: the prune only announces.
    const announce = await vaultik(["prune", r.repo, "", "--grace", "0s", "--safety-window", "1h", "--force", "--json"], withKey(r.identity));
    expect(JSON.parse(announce.stdout)).toMatchObject({ blobsDeleted: 0, blobsAnnounced: doomed.length });
    const second = await backupId(r);
    const used = await blobsOf(r, second);
    expect(used.filter((x) => doomed.includes(x))).toEqual([]);
    // When the announced blobs finally go (a prune with a zero window: that prune's window
    // counts, not the one in the notice), the new snapshot does not notice.
    const del = await vaultik(["prune", r.repo, "", ...FAST, "--json"], withKey(r.identity));
    expect(JSON.parse(del.stdout)).toMatchObject({ blobsDeleted: doomed.length });
    await expectRestores(r, second, r.source);
  });

  it("a prune that finds the lock held exits 11 naming the holder and changes nothing", async () => {
    // The races themselves (kill at every write, two prunes, backups at every point) are forced
    // in-process in prune-races.test.ts; this is the CLI's side of the lock contract.
    const r = await localRepo(join(dir, "locked"), keys);
    await writeFile(join(r.source, "a.bin"), pseudoRandom(2 * MiB, 300));
    const a = await backupId(r);
    expect((await vaultik(["forget", r.repo, "", a])).code).toBe(0);
    const before = await storedBlobs(r);
    // Held by this (live) test process on this host, for another hour.
    const lock = { host: hostname(), pid: process.pid, nonce: "held", created: new Date().toISOString(), expires: Date.now() + 3600_000 };
    await mkdir(join(r.repo, "locks"), { recursive: true });
    await writeFile(join(r.repo, "locks", "prune.json"), JSON.stringify(lock));
    const p = await vaultik(["prune", r.repo, "", ...FAST, "--force"], withKey(r.identity));
    expect(p.code, p.stderr).toBe(11);
    expect(p.stderr).toContain(`another prune is running (host ${hostname()}, pid ${process.pid}`);
    expect(await storedBlobs(r)).toEqual(before);
  });
});

describe("check", () => {
  it("finds a deleted blob and a blob with one flipped byte, naming snapshot and file; exit codes", async () => {
    const r = await localRepo(join(dir, "check"), keys);
    const env = withKey(r.identity);
    await writeFile(join(r.source, "first.bin"), pseudoRandom(2 * MiB, 400));
    const s1 = await backupId(r);
    await writeFile(join(r.source, "second.bin"), pseudoRandom(2 * MiB, 401));
    const s2 = await backupId(r);
    const ok = await vaultik(["check", r.repo, "", "--read-data"], env);
    expect(ok.code, ok.stdout).toBe(0);
    expect(ok.stdout).toContain("no errors found");

    const firstBlobs = await blobsOf(r, s1);
    const secondOnly = (await blobsOf(r, s2)).filter((x) => !firstBlobs.includes(x));
    // Flip one byte in a blob only the second snapshot uses.
    const flipped = join(r.repo, ...blobKey(secondOnly[0]!).split("/"));
    const bytes = await readFile(flipped);
    bytes[Math.floor(bytes.length / 2)]! ^= 0x20;
    await writeFile(flipped, bytes);
    // Listing alone cannot see a flipped byte (same size)…
    expect((await vaultik(["check", r.repo, ""], env)).code).toBe(0);
    // …reading the data does, and names the snapshot and the file.
    const read = await vaultik(["check", r.repo, "", "--read-data"], env);
    expect(read.code).toBe(1);
    expect(read.stdout).toContain(`snapshot ${s2} is damaged: blob ${secondOnly[0]}`);
    expect(read.stdout).toContain(`affects ${r.source.slice(1)}/second.bin`);
    expect(read.stdout).not.toContain(`snapshot ${s1} is damaged`);

    // Delete a blob both snapshots use: listing finds it, for both.
    await unlink(join(r.repo, ...blobKey(firstBlobs[0]!).split("/")));
    const listed = await vaultik(["check", r.repo, "", "--json"], env);
    expect(listed.code).toBe(1);
    const report = JSON.parse(listed.stdout) as { damage: { snapshot: string; blob: string; problem: string; files: string[] }[] };
    const missing = report.damage.filter((d) => d.blob === firstBlobs[0]);
    expect(missing.map((d) => d.snapshot).sort()).toEqual([s1, s2].sort());
    expect(missing[0]!.problem).toBe("blob is missing");
    expect(missing[0]!.files).toContain(`${r.source.slice(1)}/first.bin`);
  });
});
