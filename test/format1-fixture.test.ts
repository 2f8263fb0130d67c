// Issue 15: a repository written with snapshot format 1 (test/fixtures/format1, made once by
// test/fixtures/make-format1.ts) must keep restoring, fetching, checking and pruning with every
// later vaultik. The tests work on a copy: the committed fixture is never written.
import { execFileSync } from "node:child_process";
import { cpSync, existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { beforeEach, describe, expect, it } from "vitest";
import { writeFileAtomicSync } from "../src/util/fsio.js";
import { describeFixtureTree, type ExpectedEntry } from "./fixtures/make-format1.js";
import { vaultik, type CliResult } from "./helpers/cli.js";
import { useTempDirs } from "./helpers/temp.js";

const FIXTURE = fileURLToPath(new URL("./fixtures/format1/", import.meta.url));

interface Expected {
  format: number;
  host: string;
  sourceDir: string;
  snapshots: { id: string; blobs: string[]; entries: ExpectedEntry[] }[];
}

const expected = JSON.parse(readFileSync(join(FIXTURE, "expected.json"), "utf8")) as Expected;
const [older, latest] = expected.snapshots as [Expected["snapshots"][0], Expected["snapshots"][0]];
const keyFile = join(FIXTURE, "TEST-KEY-NOT-SECRET.txt");
const identity = readFileSync(keyFile, "utf8")
  .split("\n")
  .find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
const withKey = { env: { VAULTIK_PRIVATE_KEY: identity } };

const tempDir = useTempDirs("vaultik-format1-");
let work: string;
let repo: string;

beforeEach(async () => {
  work = await tempDir();
  repo = join(work, "repo");
  cpSync(join(FIXTURE, "repo"), repo, { recursive: true });
});

function ok(out: CliResult, what: string): CliResult {
  expect(out.code, `${what}: ${out.stderr}`).toBe(0);
  return out;
}

/** Restores `id` into a fresh directory and returns the restored source directory. */
async function restore(id: string): Promise<string> {
  const target = join(work, `restore-${id}`);
  ok(await vaultik(["restore", repo, "", id, target], withKey), `restore ${id}`);
  return join(target, expected.sourceDir.slice(1));
}

function blobsOnDisk(): string[] {
  return readdirSync(join(repo, "blobs"), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile())
    .map((e) => e.name)
    .sort();
}

describe("format-1 repository fixture (test/fixtures/format1)", () => {
  it("is snapshot format 1, read with age, zstd and sqlite3 rather than vaultik", () => {
    for (const snap of expected.snapshots) {
      const db = join(work, `${snap.id}.sqlite`);
      const plain = execFileSync("age", ["-d", "-i", keyFile, join(repo, "index", `${snap.id}.sqlite.zst.age`)]);
      writeFileAtomicSync(db, execFileSync("zstd", ["-d", "-c"], { input: plain }));
      expect(execFileSync("sqlite3", [db, "SELECT value FROM meta WHERE key = 'format'"], { encoding: "utf8" }).trim(), snap.id).toBe("1");
    }
  });

  it("snapshots --json lists both snapshots", async () => {
    const out = ok(await vaultik(["snapshots", repo, "--json"], withKey), "snapshots");
    const listed = JSON.parse(out.stdout) as { id: string; host: string; status: string; files: number }[];
    expect(listed.map((s) => [s.id, s.host, s.status])).toEqual(expected.snapshots.map((s) => [s.id, expected.host, "ok"]));
    expect(listed.map((s) => s.files)).toEqual(expected.snapshots.map((s) => s.entries.filter((e) => e.type === "file").length));
  });

  it("restores both snapshots bit-exact: bytes, types, modes, mtimes, symlink targets", async () => {
    for (const snap of expected.snapshots) expect(describeFixtureTree(await restore(snap.id)), snap.id).toEqual(snap.entries);
  });

  it("fetch of one file gives its bytes, mode and mtime", async () => {
    const want = latest.entries.find((e) => e.path === "nested/deeper/leaf.txt")!;
    const target = join(work, "fetched");
    ok(await vaultik(["fetch", repo, "", "latest", `${expected.sourceDir}/${want.path}`, target], withKey), "fetch");
    expect(describeFixtureTree(target)).toEqual([{ ...want, path: "." }]);
  });

  it("check --read-data finds no damage", async () => {
    const out = ok(await vaultik(["check", repo, "", "--read-data"], withKey), "check");
    expect(out.stdout).toContain(`checked 2 snapshot(s), 2 referenced blob(s), read and verified 2`);
    expect(out.stdout).toContain("no errors found");
  });

  it("prune drops the older snapshot and its blob, and the latest still restores bit-exact", async () => {
    expect(blobsOnDisk()).toEqual([...older.blobs, ...latest.blobs].sort());
    const out = ok(await vaultik(["prune", repo, "", "--keep-last", "1", "--grace", "0s", "--safety-window", "0s", "--json"], withKey), "prune");
    const summary = JSON.parse(out.stdout) as { snapshotsRemoved: string[]; blobsDeleted: number };
    expect(summary.snapshotsRemoved).toEqual([older.id]);
    expect(summary.blobsDeleted).toBe(older.blobs.length);
    expect(blobsOnDisk()).toEqual([...latest.blobs].sort());
    expect(existsSync(join(repo, "index", `${older.id}.sqlite.zst.age`))).toBe(false);
    const listed = JSON.parse(ok(await vaultik(["snapshots", repo, "--json"]), "snapshots").stdout) as { id: string }[];
    expect(listed.map((s) => s.id)).toEqual([latest.id]);
    expect(describeFixtureTree(await restore("latest"))).toEqual(latest.entries);
  });
});
