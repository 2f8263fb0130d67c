import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, stat, symlink, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateIdentity, parseIdentity } from "../src/crypto/keys.js";
import { SEALED_SEGMENT_SIZE, SEGMENT_SIZE, PAYLOAD_NONCE_SIZE } from "../src/crypto/stream.js";
import { Repository } from "../src/repo/repository.js";
import { blobKey } from "../src/repo/layout.js";
import { withSnapshot } from "../src/snapshot/open.js";
import { openFsStore } from "../src/store/fs.js";
import { openS3Store } from "../src/store/s3.js";
import { vaultik } from "./helpers/cli.js";
import { s3rverStoreOptions, startS3rver } from "./helpers/s3rver.js";
import { describeTree, pseudoRandom, type TreeEntry } from "./helpers/tree.js";
import { placementsOf } from "./helpers/plans.js";

// Issue 14 item 4: one damaged STREAM segment (or one entry that cannot be created) costs exactly
// the files that touch it. Every other file is restored bit-exact and finished, every failure is
// named (all of them in --json), the summary counts both, and the exit code is 1.
//
// The damage is what a bad disk does: one flipped byte in the ciphertext of one segment of a
// real blob. The test reads the snapshot with the private key only to know where chunks lie (its
// oracle); the restore under test runs through the built CLI.

/** The segment to damage: the first from 15 on that holds part of a file in b-med/ (see beforeAll). */
const FROM_SEGMENT = 15;
let segment: number;

interface Result {
  snapshotId: string;
  files: number;
  dirs: number;
  symlinks: number;
  failed: { files: number; dirs: number; symlinks: number };
  errors: { path: string; target?: string; message: string }[];
}

let dir: string;
let repoDir: string;
let source: string;
let snapPrefix: string;
let identity: string;
let id: string;
let blob: string;
/** Snapshot paths of files with a chunk whose frame overlaps the damaged segment. */
let damaged: string[];
/** Every file's snapshot path. */
let allFiles: string[];
let expectedTree: Map<string, TreeEntry>;

const env = () => ({ VAULTIK_PRIVATE_KEY: identity });

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-damage-"));
  repoDir = join(dir, "repo");
  source = join(dir, "source");
  snapPrefix = source.slice(1);
  // 200 tiny files, then 5 directories of 10 files of 20-60 KiB, then one file of several chunks:
  // about 45 segments in one blob, so segment 15 has intact files on both sides of it.
  let seed = 1;
  for (let i = 0; i < 200; i++) {
    await mkdir(join(source, "a-tiny"), { recursive: true });
    await writeFile(join(source, "a-tiny", `t${String(i).padStart(3, "0")}`), pseudoRandom(1024, seed++));
  }
  for (let d = 0; d < 5; d++) {
    for (let i = 0; i < 10; i++) {
      const size = 20 * 1024 + ((d * 10 + i) * 7919) % (40 * 1024);
      await mkdir(join(source, "b-med", `d${d}`), { recursive: true });
      await writeFile(join(source, "b-med", `d${d}`, `f${i}`), pseudoRandom(size, seed++));
    }
  }
  await writeFile(join(source, "c-big.bin"), pseudoRandom(600 * 1024, seed++));
  await mkdir(join(source, "e-dirs", "x"), { recursive: true });
  await writeFile(join(source, "e-dirs", "x", "one"), "one\n");
  await writeFile(join(source, "e-dirs", "x", "two"), "two\n");
  await symlink("x/one", join(source, "e-dirs", "link"));
  // Past times on directories, set last, so a restore that does not finish them shows it.
  const past = new Date("2021-03-04T05:06:07.123Z");
  for (const d of ["e-dirs/x", "e-dirs", "b-med/d0", "b-med", "a-tiny"]) await utimes(join(source, d), past, past);

  const keys = await generateIdentity();
  identity = keys.identity;
  const config = join(dir, "vaultik.yml");
  await writeFile(
    config,
    `age_recipient: ${keys.recipient}\nsource_dirs: [${source}]\nstore: ${repoDir}\nindex_path: ${dir}/state/index.sqlite\n` +
      `chunk_size: 64KiB\nblob_size_limit: 16MiB\n`,
  );
  const b = await vaultik(["backup", config, "--json"]);
  expect(b.code, b.stderr).toBe(0);
  id = (JSON.parse(b.stdout) as { snapshotId: string }).snapshotId;
  expectedTree = await describeTree(source);

  // The oracle: which files have a chunk whose frame lies (partly) in the damaged segment.
  const repo = new Repository(openFsStore(repoDir));
  const identities = [parseIdentity(identity)];
  const snap = await repo.findSnapshot(id);
  const plan = await withSnapshot(repo, snap, identities, async (reader) => {
    const blobs = reader.blobs();
    const files = [...reader.entries()].filter((e) => e.type === "file").map((e) => e.path);
    // Chunk workers run in parallel, so the order of files in the blob varies from run to run.
    const placements = placementsOf(reader);
    const filesIn = (seg: number) => {
      const [lo, hi] = [seg * SEGMENT_SIZE, (seg + 1) * SEGMENT_SIZE];
      return [...new Set(placements.filter((p) => p.loc.offset < hi && p.loc.offset + p.loc.length > lo).map((p) => p.path))].sort();
    };
    let seg = FROM_SEGMENT;
    while (seg < 100 && !filesIn(seg).some((p) => p.includes("/b-med/"))) seg++;
    expect(seg).toBeLessThan(100);
    // Intact files must lie after it too: that is what the stream cannot reach past the damage.
    expect(placements.some((p) => p.loc.offset >= (seg + 1) * SEGMENT_SIZE)).toBe(true);
    return { blobs, files, seg, hit: filesIn(seg) };
  });
  segment = plan.seg;
  expect(plan.blobs).toHaveLength(1);
  blob = plan.blobs[0]!.name;
  allFiles = plan.files;
  damaged = plan.hit;
  expect(damaged.length).toBeGreaterThan(0);
  expect(damaged.length).toBeLessThan(10);

  // One flipped byte in the middle of segment 15's ciphertext.
  const blobPath = join(repoDir, blobKey(blob));
  const bytes = await readFile(blobPath);
  const headerLength = bytes.indexOf("\n", bytes.indexOf("\n--- ") + 1) + 1;
  const at = headerLength + PAYLOAD_NONCE_SIZE + segment * SEALED_SEGMENT_SIZE + 1000;
  bytes[at]! ^= 0x40;
  await writeFile(blobPath, bytes);
}, 120_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** Asserts every entry of the source (below `sub`) but `failed` was restored exactly, times included. */
async function expectIntactExcept(restoredRoot: string, failed: readonly string[], sub = ""): Promise<void> {
  const got = await describeTree(restoredRoot);
  const skip = new Set(failed.map((p) => p.slice(snapPrefix.length + 1 + (sub ? sub.length + 1 : 0))));
  for (const [rel, want] of expectedTree) {
    if (sub && !(rel === sub || rel.startsWith(`${sub}/`))) continue;
    const key = sub ? rel.slice(sub.length + 1) : rel;
    if (key === "" || skip.has(key)) continue;
    expect(got.get(key), key).toEqual(want);
  }
}

describe("a flipped byte in one segment of a blob", () => {
  it("restore writes every intact file bit-exact, fails exactly the files in the damaged segment, and says so", async () => {
    const target = join(dir, "restore-json");
    const r = await vaultik(["restore", repoDir, "", id, target, "--json"], { env: env() });
    expect(r.code, r.stderr).toBe(1);
    const out = JSON.parse(r.stdout) as Result;
    expect(out.errors.map((e) => e.path).sort()).toEqual(damaged);
    for (const e of out.errors) expect(e.message).toContain(`segment ${segment}`);
    expect(out.failed.files).toBe(damaged.length);
    expect(out.files).toBe(allFiles.length - damaged.length);
    await expectIntactExcept(join(target, snapPrefix), damaged);
    // A failed file never passes for intact: not the snapshot's mode (0600) if it exists at all.
    for (const p of damaged) {
      const st = await stat(join(target, p)).catch(() => undefined);
      if (st) expect(st.mode & 0o777).toBe(0o600);
    }
  });

  it("the text summary counts restored and failed files and names each failure", async () => {
    const target = join(dir, "restore-text");
    const r = await vaultik(["restore", repoDir, "", id, target], { env: env() });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`restored snapshot ${id}: ${allFiles.length - damaged.length} files`);
    expect(r.stderr).toContain(`${damaged.length} file${damaged.length === 1 ? "" : "s"} failed`);
    const named = r.stderr.split("\n").filter((l) => l.startsWith("vaultik: error: "));
    expect(named.map((l) => l.slice("vaultik: error: ".length).split(": ")[0]).sort()).toEqual(damaged);
  });

  it("fetch of a subtree read by ranged reads fails only its damaged files", async () => {
    // One directory of the damaged region: well under a quarter of the blob, so read by ranges.
    const sub = dirname(damaged.find((p) => p.includes("/b-med/"))!).slice(snapPrefix.length + 1);
    const inSub = damaged.filter((p) => p.startsWith(`${snapPrefix}/${sub}/`));
    const target = join(dir, "fetch-sub");
    const r = await vaultik(["fetch", repoDir, "", id, `/${snapPrefix}/${sub}`, target, "--json"], { env: env() });
    expect(r.code, r.stderr).toBe(1);
    const out = JSON.parse(r.stdout) as Result & { blobsRanged: number };
    expect(out.blobsRanged).toBe(1);
    expect(out.errors.map((e) => e.path).sort()).toEqual(inSub);
    await expectIntactExcept(target, inSub, sub);
  });

  it("check --read-data names exactly the files restore fails, not every file of the blob", async () => {
    const r = await vaultik(["check", repoDir, "", "--read-data", "--json"], { env: env() });
    expect(r.code, r.stderr).toBe(1);
    const out = JSON.parse(r.stdout) as { damage: { blob: string; damagedChunks?: number; files: string[]; moreFiles: number; problem: string }[] };
    expect(out.damage).toHaveLength(1);
    const d = out.damage[0]!;
    expect(d.blob).toBe(blob);
    expect(d.problem).toContain(`segment ${segment}`);
    expect(d.damagedChunks).toBeGreaterThan(0);
    expect(d.moreFiles).toBe(0);
    expect([...d.files].sort()).toEqual(damaged);
  });

  it("fetch of an intact file in the damaged blob succeeds", async () => {
    const intact = allFiles.find((p) => !damaged.includes(p) && p.includes("/b-med/"))!;
    const out = join(dir, "fetched-intact");
    const r = await vaultik(["fetch", repoDir, "", id, `/${intact}`, out], { env: env() });
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(out)).toEqual(await readFile(join("/", intact)));
  });
});

describe("entries that cannot be created", () => {
  it("are reported one by one, and the rest of the tree is restored and finished", async () => {
    const target = join(dir, "restore-blocked");
    const root = join(target, snapPrefix);
    // A directory where a file goes, a file where a directory goes, a directory where a symlink goes.
    const intactFile = allFiles.find((p) => !damaged.includes(p) && p.includes("/b-med/d4/"))!;
    await mkdir(join(target, intactFile, "in-the-way"), { recursive: true });
    await mkdir(join(root, "e-dirs"), { recursive: true });
    await writeFile(join(root, "e-dirs", "x"), "a file where a directory goes");
    await mkdir(join(root, "e-dirs", "link", "in-the-way"), { recursive: true });
    const r = await vaultik(["restore", repoDir, "", id, target, "--json"], { env: env() });
    expect(r.code, r.stderr).toBe(1);
    const out = JSON.parse(r.stdout) as Result;
    const blocked = [intactFile, `${snapPrefix}/e-dirs/x`, `${snapPrefix}/e-dirs/x/one`, `${snapPrefix}/e-dirs/x/two`, `${snapPrefix}/e-dirs/link`];
    expect(out.errors.map((e) => e.path).sort()).toEqual([...damaged, ...blocked].sort());
    const byPath = new Map(out.errors.map((e) => [e.path, e.message]));
    expect(byPath.get(intactFile)).toMatch(/a directory is in the way/);
    expect(byPath.get(`${snapPrefix}/e-dirs/link`)).toMatch(/a directory is in the way/);
    expect(byPath.get(`${snapPrefix}/e-dirs/x`)).toMatch(/not a directory/);
    expect(out.failed).toEqual({ files: damaged.length + 3, dirs: 1, symlinks: 1 });
    expect(out.files).toBe(allFiles.length - damaged.length - 3);
    // Everything else, directories' modes and times included (e-dirs holds what was in the way).
    const got = await describeTree(root);
    for (const [rel, want] of expectedTree) {
      const snapPath = `${snapPrefix}/${rel}`;
      if (rel.startsWith("e-dirs") || damaged.includes(snapPath) || blocked.includes(snapPath)) continue;
      expect(got.get(rel), rel).toEqual(want);
    }
    expect((await stat(join(root, "e-dirs"))).mtime).toEqual((await stat(join(source, "e-dirs"))).mtime);
  });
});

describe("a blob that is gone", () => {
  it("names every file it held: all in --json; in text the first ones and how many more, all with --all-errors", async () => {
    const copy = join(dir, "repo-missing");
    execFileSync("cp", ["-a", repoDir, copy]);
    await rm(join(copy, blobKey(blob)));
    const json = await vaultik(["restore", copy, "", id, join(dir, "missing-json"), "--json"], { env: env() });
    expect(json.code).toBe(1);
    const out = JSON.parse(json.stdout) as Result;
    const withChunks = allFiles; // every file of this tree has content, all in the one blob
    expect(out.errors.map((e) => e.path).sort()).toEqual([...withChunks].sort());
    expect(out.failed.files).toBe(withChunks.length);
    expect(out.files).toBe(0);

    const text = await vaultik(["restore", copy, "", id, join(dir, "missing-text")], { env: env() });
    expect(text.code).toBe(1);
    const lines = text.stderr.split("\n").filter((l) => l.startsWith("vaultik: error: "));
    expect(lines.length).toBeLessThan(withChunks.length);
    expect(text.stderr).toContain(`and ${withChunks.length - lines.length} more (--all-errors lists every one)`);
    expect(text.stderr).toContain(`restored snapshot ${id}: 0 files`);
    expect(text.stderr).toContain(`${withChunks.length} files failed`);

    const all = await vaultik(["restore", copy, "", id, join(dir, "missing-all"), "--all-errors"], { env: env() });
    expect(all.code).toBe(1);
    const allLines = all.stderr.split("\n").filter((l) => l.startsWith("vaultik: error: "));
    expect(allLines.map((l) => l.slice("vaultik: error: ".length).split(": ")[0]).sort()).toEqual([...withChunks].sort());
    expect(all.stderr).not.toContain("more (--all-errors");
  });
});

describe("the same damaged repository on S3 (s3rver)", () => {
  it("restore and a ranged fetch fail exactly the damaged files; the rest is bit-exact", async () => {
    const server = await startS3rver("vaultik-damage");
    try {
      // The damaged repository as it is, object for object, in a bucket.
      const fs = openFsStore(repoDir);
      const s3 = openS3Store(s3rverStoreOptions(server, "repo"));
      for await (const info of fs.list("")) {
        const parts: Buffer[] = [];
        for await (const p of await fs.get(info.key)) parts.push(p as Buffer);
        await s3.put(info.key, Buffer.concat(parts));
      }
      const s3env = { ...env(), VAULTIK_S3_ENDPOINT: server.endpoint, AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_REGION: "us-east-1" };
      const target = join(dir, "s3-restore");
      const r = await vaultik(["restore", server.bucket, "repo", id, target, "--json"], { env: s3env });
      expect(r.code, r.stderr).toBe(1);
      expect((JSON.parse(r.stdout) as Result).errors.map((e) => e.path).sort()).toEqual(damaged);
      await expectIntactExcept(join(target, snapPrefix), damaged);

      const sub = dirname(damaged.find((p) => p.includes("/b-med/"))!).slice(snapPrefix.length + 1);
      const inSub = damaged.filter((p) => p.startsWith(`${snapPrefix}/${sub}/`));
      const fetched = join(dir, "s3-fetch");
      const f = await vaultik(["fetch", server.bucket, "repo", id, `/${snapPrefix}/${sub}`, fetched, "--json"], { env: s3env });
      expect(f.code, f.stderr).toBe(1);
      const out = JSON.parse(f.stdout) as Result & { blobsRanged: number };
      expect(out.blobsRanged).toBe(1);
      expect(out.errors.map((e) => e.path).sort()).toEqual(inSub);
      await expectIntactExcept(fetched, inSub, sub);
    } finally {
      await server.close();
    }
  });
});
