// Issue 16, selective restore: `restore --include/--exclude` restores exactly what the patterns
// select (and the directories above it), reads less of the repository, and `--dry-run` says what
// would be restored and read without writing anything; on the directory store and on S3.
import { existsSync, lstatSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { vaultik } from "./helpers/cli.js";
import { describeTree } from "./helpers/fidelity.js";
import { useTempDirs } from "./helpers/temp.js";
import { useTrickyRepo } from "./helpers/tricky-tree.js";

const tempDir = useTempDirs("vaultik-select-t-");
const fx = useTrickyRepo("selected");

interface Restored {
  files: number;
  dirs: number;
  symlinks: number;
  bytesFetched: number;
  errors: unknown[];
}

interface DryRun {
  snapshotId: string;
  dryRun: true;
  paths: string[];
  files: number;
  dirs: number;
  symlinks: number;
  bytes: number;
  blobs: number;
  bytesToRead: number;
}

/** Every path below `root` (escaped, relative), sorted: the directories above the source too. */
const listing = (root: string) => [...describeTree(root).keys()].filter((p) => p !== ".").sort();
/** The restored source's relative path and each of its ancestors, as listing() shows them. */
const above = () => fx.r.src.slice(1).split("/").map((_, i, parts) => parts.slice(0, i + 1).join("/"));
const inSrc = (...names: string[]) => names.map((n) => `${fx.r.src.slice(1)}/${n}`);


describe.each(fx.stores)("restore --include/--exclude on the $name", (store) => {
  const restore = (target: string, ...flags: string[]) =>
    vaultik(["restore", ...store.repoArgs(), fx.r.snapshotId, target, ...flags], { env: { ...store.env(), VAULTIK_PRIVATE_KEY: fx.r.identity } });

  it("restores exactly what the patterns select, the directories above it, a link set's content through the one chosen name", async () => {
    const t = join(await tempDir(), "t");
    const flags = ["--include", "*.log", "--include", `${fx.r.src}/sub/`, "--include", "hard-b", "--include", "bad?", "--exclude", "b.log", "--exclude", "deep.bin"];
    const out = await restore(t, "--json", ...flags);
    expect(out.code, out.stderr).toBe(0);
    expect(listing(t)).toEqual([...above(), ...inSrc("bad\\xff", "hard-b", "logs", "logs/a.log", "sub", "sub/notes.md")].sort());
    expect(readFileSync(join(t, fx.r.src, "hard-b"), "utf8")).toBe("one inode, two names\n");
    expect(readFileSync(join(t, fx.r.src, "logs/a.log"), "utf8")).toBe("log a\n");
    // The selected directory keeps its recorded mode and time.
    expect(statSync(join(t, fx.r.src, "sub")).mtimeMs).toBe(statSync(join(fx.r.src, "sub")).mtimeMs);
    const summary = JSON.parse(out.stdout) as Restored;
    expect(summary.errors).toEqual([]);
    expect([summary.files, summary.symlinks]).toEqual([4, 0]);

    // The whole snapshot for comparison: the selection read under a quarter of it (deep.bin,
    // 300 KiB of random bytes, is left out: its frames are not read), and no more than its dry
    // run said it would (which cannot know the exact length of a blob's header).
    const whole = JSON.parse((await restore(join(await tempDir(), "w"), "--json")).stdout) as Restored;
    const planned = await restore(join(t, "never"), "--json", "--dry-run", ...flags);
    const estimate = JSON.parse(planned.stdout) as DryRun;
    expect(summary.bytesFetched).toBeLessThan(whole.bytesFetched / 4);
    expect(summary.bytesFetched).toBeLessThanOrEqual(estimate.bytesToRead);
    expect(estimate.bytesToRead).toBeLessThan(summary.bytesFetched + 4 * 65_552);
  });

  it("--dry-run lists what would be restored, says how much, and writes nothing", async () => {
    const t = join(await tempDir(), "never");
    const out = await restore(t, "--dry-run", "--include", "logs", "--include", "new*", "--exclude", "*.txt");
    expect(out.code, out.stderr).toBe(0);
    const shown = (n: string) => `/${fx.r.src.slice(1)}${n === "" ? "" : `/${n}`}`;
    const expected = [...above().map((p) => `/${p}`), shown("logs"), shown("logs/a.log"), shown("logs/b.log"), shown("new\\x0aline")];
    expect(out.stdout).toBe([...expected, ""].join("\n"));
    expect(out.stderr).toMatch(/^dry run of snapshot \S+: would restore 3 files, 4 directories, 0 symlinks, 34 B, reading about [\d.]+ KiB from 1 blob\(s\); nothing written\n$/);
    expect(existsSync(t)).toBe(false);

    const json = await restore(t, "--dry-run", "--json", "--include", "logs", "--include", "new*", "--exclude", "*.txt");
    expect(json.code, json.stderr).toBe(0);
    const d = JSON.parse(json.stdout) as DryRun;
    expect(d).toMatchObject({ snapshotId: fx.r.snapshotId, dryRun: true, files: 3, dirs: 4, symlinks: 0, bytes: 34, blobs: 1 });
    expect(d.paths).toEqual(expected);
    expect(existsSync(t)).toBe(false);
  });

  it("an --include that matches nothing: exit 10 naming it, nothing written", async () => {
    const t = join(await tempDir(), "never");
    const out = await restore(t, "--include", "*.log", "--include", "nothing-like-this");
    expect(out.code).toBe(10);
    expect(out.stderr).toBe("vaultik: error: --include nothing-like-this: matches nothing in snapshot " + fx.r.snapshotId + "\n");
    expect(existsSync(t)).toBe(false);
  });
});

it("fetch takes the patterns too, from the snapshot root, within the fetched subtree", async () => {
  const t = join(await tempDir(), "t");
  const out = await vaultik(["fetch", fx.r.repo, "", fx.r.snapshotId, `${fx.r.src}/logs`, t, "--exclude", "/**/a.log"], { env: { VAULTIK_PRIVATE_KEY: fx.r.identity } });
  expect(out.code, out.stderr).toBe(0);
  expect(listing(t)).toEqual(["b.log", "keep.txt"]);
  expect(lstatSync(t).isDirectory()).toBe(true);
});

it("fetch … - (one file to stdout) refuses the selection options rather than ignoring them", async () => {
  for (const flag of [["--include", "*.log"], ["--exclude", "*.log"], ["--dry-run"]]) {
    const out = await vaultik(["fetch", fx.r.repo, "", fx.r.snapshotId, `${fx.r.src}/plain.txt`, "-", ...flag], { env: { VAULTIK_PRIVATE_KEY: fx.r.identity } });
    expect(out.code).toBe(2);
    expect(out.stdout).toBe("");
    expect(out.stderr).toBe(`vaultik: error: ${flag[0]}: TARGET - writes one file to stdout; leave it out\n`);
  }
});
