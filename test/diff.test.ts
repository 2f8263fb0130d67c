// Issue 16 item 1: `vaultik diff` through the built binary, on the directory store and on S3
// (s3rver), between two real backups of a tree with names that are not UTF-8, a newline, a
// space, unicode, a symlink, a hard link and an empty directory, with known adds, removes,
// content, mode and type changes; restricted to a PATH; and between a format-1 snapshot and a
// format-2 one of the same tree.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, cpSync, existsSync, linkSync, lstatSync, lutimesSync, mkdirSync, readFileSync, rmSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseIdentity } from "../src/crypto/keys.js";
import { Repository } from "../src/repo/repository.js";
import { withSnapshot } from "../src/snapshot/open.js";
import { openFsStore } from "../src/store/fs.js";
import { formatBytes } from "../src/util/units.js";
import { vaultik, type CliResult } from "./helpers/cli.js";
import { mirrorToS3rver, s3rverCliEnv, startS3rver, type S3rverHandle } from "./helpers/s3rver.js";
import { backupId, cliKeys, localRepo, type LocalRepo } from "./helpers/setup.js";

const T0 = new Date("2024-01-02T03:04:05Z");
const T1 = new Date("2024-06-07T08:09:10Z");
const contents = {
  keep: Buffer.from("kept as it is\n"),
  badOld: Buffer.from("bad name, old content\n"),
  badNew: Buffer.from("bad name, new and longer content\n"),
  newline: Buffer.from("a name with a newline\n"),
  space: Buffer.from("a name with a space\n"),
  unicode: Buffer.from("unicode name\n"),
  hardOld: Buffer.from("hard-linked, before\n"),
  hardNew: Buffer.from("hard-linked, after the change\n"),
  tofile: Buffer.from("a file that becomes a symlink\n"),
  added: Buffer.from("added with a byte name\n"),
  // Below the chunker's minimum (16 KiB for 64 KiB chunks): one chunk, and incompressible.
  random: randomBytes(12 * 1024),
};

let dir: string;
let r: LocalRepo;
let src: string;
let s1: string;
let s2: string;
let server: S3rverHandle;
/** Paths as diff prints them: absolute, escaped. */
let at: (name: string) => string;
/** Lines for the directories above the temp dir whose mtime moved between the backups (/tmp is shared). */
let above: { text: string[]; json: Record<string, unknown>[] };

/** A node:fs path for a name under the source given as bytes (written as latin1). */
const p = (latin1: string) => Buffer.concat([Buffer.from(`${src}/`), Buffer.from(latin1, "latin1")]);
const withKey = () => ({ env: { VAULTIK_PRIVATE_KEY: r.identity } });
const s3 = () => ({ env: { ...s3rverCliEnv(server), VAULTIK_PRIVATE_KEY: r.identity } });

function ok(out: CliResult): CliResult {
  expect(out.code, out.stderr).toBe(0);
  return out;
}

function times(path: Buffer | string, t: Date, link = false): void {
  if (link) lutimesSync(path, t, t);
  else utimesSync(path, t, t);
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-diff-"));
  r = await localRepo(dir, await cliKeys());
  src = r.source;
  // Made before the first backup, so that backup does not move the temp dir's mtime.
  mkdirSync(join(dir, "state"));
  mkdirSync(r.repo);
  mkdirSync(join(src, "sub"));
  mkdirSync(join(src, "empty"));
  writeFileSync(p("keep.txt"), contents.keep);
  writeFileSync(p("bad\xff"), contents.badOld);
  writeFileSync(p("new\nline"), contents.newline);
  writeFileSync(p("with space"), contents.space);
  writeFileSync(p("unicod\xc3\xa9-\xc3\x9f.txt"), contents.unicode);
  writeFileSync(p("hard1"), contents.hardOld);
  linkSync(p("hard1"), p("sub/hard2"));
  writeFileSync(p("tofile"), contents.tofile);
  symlinkSync("keep.txt", p("link"));
  for (const f of ["keep.txt", "bad\xff", "new\nline", "with space", "unicod\xc3\xa9-\xc3\x9f.txt", "hard1", "tofile"]) {
    chmodSync(p(f), 0o644);
    times(p(f), T0);
  }
  times(p("link"), T0, true);
  for (const d of ["sub", "empty", ""]) {
    chmodSync(p(d), 0o755);
    times(p(d), T0);
  }
  times(dir, T0);
  s1 = await backupId(r);

  // The changes, each with a known line.
  writeFileSync(p("bad\xff"), contents.badNew);
  times(p("bad\xff"), T1);
  rmSync(p("new\nline"));
  rmSync(p("empty"), { recursive: true });
  chmodSync(p("with space"), 0o600);
  times(p("unicod\xc3\xa9-\xc3\x9f.txt"), T1);
  writeFileSync(p("hard1"), contents.hardNew); // the same inode: sub/hard2 changes with it
  times(p("hard1"), T1);
  unlinkSync(p("tofile"));
  symlinkSync("keep.txt", p("tofile"));
  times(p("tofile"), T0, true);
  writeFileSync(p("added\xfe"), contents.added);
  writeFileSync(p("random.bin"), contents.random);
  for (const f of ["added\xfe", "random.bin"]) {
    chmodSync(p(f), 0o644);
    times(p(f), T0);
  }
  times(p("sub"), T0);
  times(p(""), T1);
  times(dir, T0);
  s2 = await backupId(r);

  above = await movedAncestors();
  server = await startS3rver();
  await mirrorToS3rver(r.repo, server, "diffs");
  at = (name: string) => `${src}/${name}`;
}, 180_000);

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

/** The directories above `dir` as both snapshots recorded them: read through the library, not diff. */
async function movedAncestors(): Promise<{ text: string[]; json: Record<string, unknown>[] }> {
  const repo = new Repository(openFsStore(r.repo));
  const ids = [parseIdentity(r.identity)];
  const ancestors: string[] = [];
  for (let d = dirname(dir); d !== "/"; d = dirname(d)) ancestors.unshift(d.slice(1));
  const mtimes = async (id: string) =>
    withSnapshot(repo, await repo.findSnapshot(id), ids, async (reader) => ancestors.map((a) => reader.entry(a)!.mtimeNs));
  const [a, b] = [await mtimes(s1), await mtimes(s2)];
  const moved = ancestors.filter((_, i) => a[i] !== b[i]);
  return {
    text: moved.map((m) => `U    /${m}`),
    json: moved.map((m) => ({ path: `/${m}`, change: "metadata", type: "dir", fields: ["mtime"] })),
  };
}

const sum = (...bs: Buffer[]) => bs.reduce((n, b) => n + b.length, 0);
const addedRaw = () => sum(contents.badNew, contents.hardNew, contents.added, contents.random);
const removedRaw = () => sum(contents.badOld, contents.newline, contents.hardOld, contents.tofile);

interface Summary {
  files: Record<string, number>;
  dirs: Record<string, number>;
  others: Record<string, number>;
  added: { chunks: number; raw: number; stored: number };
  removed: { chunks: number; raw: number; stored: number };
}

const counts = (n: number, removed: number, changed: number) => ({ new: n, removed, changed });

function expectedChanges(): Record<string, unknown>[] {
  const all = ["size", "content", "mtime"];
  return [
    ...above.json,
    { path: src, change: "metadata", type: "dir", fields: ["mtime"] },
    { path: at("added\\xfe"), change: "added", type: "file" },
    { path: at("bad\\xff"), change: "content", type: "file", fields: all },
    { path: at("empty"), change: "removed", type: "dir" },
    { path: at("hard1"), change: "content", type: "file", fields: all },
    { path: at("new\\x0aline"), change: "removed", type: "file" },
    { path: at("random.bin"), change: "added", type: "file" },
    { path: at("sub/hard2"), change: "content", type: "file", fields: all },
    { path: at("tofile"), change: "type", type: "symlink", oldType: "file" },
    { path: at("unicodé-ß.txt"), change: "metadata", type: "file", fields: ["mtime"] },
    { path: at("with space"), change: "metadata", type: "file", fields: ["mode"] },
  ];
}

function expectedText(summary: Summary, header: string, lines: string[], c: { files: number[]; dirs: number[]; others: number[] }): string {
  const row = (label: string, [n, rm, ch]: number[]) =>
    `${label.padEnd(8)}${String(n).padStart(5)} new, ${String(rm).padStart(5)} removed, ${String(ch).padStart(5)} changed`;
  const data = (label: string, d: Summary["added"]) => `${label.padEnd(9)}${formatBytes(d.raw)} in ${d.chunks} chunk${d.chunks === 1 ? "" : "s"} (${formatBytes(d.stored)} stored)`;
  return [header, "", ...lines, "", row("Files:", c.files), row("Dirs:", c.dirs), row("Others:", c.others), data("Added:", summary.added), data("Removed:", summary.removed), ""].join("\n");
}

describe.each([
  ["the directory store", () => [r.repo, ""], withKey],
  ["S3 (s3rver)", () => [server.bucket, "diffs"], s3],
] as const)("vaultik diff on %s", (_name, repoArgs, env) => {
  it("lists every add, remove, content, mode and type change of the whole snapshots, text and JSON, exactly", async () => {
    const json = ok(await vaultik(["diff", ...repoArgs(), s1, s2, "--json"], env()));
    const doc = JSON.parse(json.stdout) as { from: string; to: string; changes: unknown[]; summary: Summary };
    // Streamed a change at a time, laid out as one pretty-printed document.
    expect(json.stdout).toBe(`${JSON.stringify(doc, null, 2)}\n`);
    expect(doc.from).toBe(s1);
    expect(doc.to).toBe(s2);
    expect(doc.changes).toEqual(expectedChanges());
    const dirsChanged = 1 + above.json.length;
    expect(doc.summary).toEqual({
      files: counts(2, 1, 5),
      dirs: counts(0, 1, dirsChanged),
      others: counts(0, 0, 1),
      added: { chunks: 4, raw: addedRaw(), stored: doc.summary.added.stored },
      removed: { chunks: 4, raw: removedRaw(), stored: doc.summary.removed.stored },
    });
    // Random bytes do not compress: stored at least as much as they hold, plus frame overhead.
    expect(doc.summary.added.stored).toBeGreaterThanOrEqual(contents.random.length);
    expect(doc.summary.added.stored).toBeLessThan(addedRaw() + 1024);

    const text = ok(await vaultik(["diff", ...repoArgs(), s1, s2], env()));
    const lines = [
      ...above.text,
      `U    ${src}`,
      `+    ${at("added\\xfe")}`,
      `M    ${at("bad\\xff")}`,
      `-    ${at("empty")}`,
      `M    ${at("hard1")}`,
      `-    ${at("new\\x0aline")}`,
      `+    ${at("random.bin")}`,
      `M    ${at("sub/hard2")}`,
      `T    ${at("tofile")}`,
      `U    ${at("unicodé-ß.txt")}`,
      `U    ${at("with space")}`,
    ];
    expect(text.stdout).toBe(
      expectedText(doc.summary, `comparing snapshot ${s1} to ${s2}:`, lines, { files: [2, 1, 5], dirs: [0, 1, dirsChanged], others: [0, 0, 1] }),
    );
    expect(text.stderr).toBe("");
  }, 120_000);

  it("with PATH compares only that part, its data included; PATH is taken in the escaped form too", async () => {
    const sub = JSON.parse(ok(await vaultik(["diff", ...repoArgs(), s1, s2, `${src}/sub`, "--json"], env())).stdout) as { changes: unknown[]; summary: Summary; path: string };
    expect(sub.path).toBe(`${src}/sub`);
    expect(sub.changes).toEqual([{ path: at("sub/hard2"), change: "content", type: "file", fields: ["size", "content", "mtime"] }]);
    expect(sub.summary).toMatchObject({
      files: counts(0, 0, 1),
      dirs: counts(0, 0, 0),
      others: counts(0, 0, 0),
      added: { chunks: 1, raw: contents.hardNew.length },
      removed: { chunks: 1, raw: contents.hardOld.length },
    });
    const text = ok(await vaultik(["diff", ...repoArgs(), s1, s2, `${src}/sub`], env()));
    expect(text.stdout).toBe(
      expectedText(sub.summary, `comparing snapshot ${s1} to ${s2} at ${src}/sub:`, [`M    ${at("sub/hard2")}`], { files: [0, 0, 1], dirs: [0, 0, 0], others: [0, 0, 0] }),
    );

    const bad = JSON.parse(ok(await vaultik(["diff", ...repoArgs(), s1, s2, at("bad\\xff"), "--json"], env())).stdout) as { changes: unknown[] };
    expect(bad.changes).toEqual([{ path: at("bad\\xff"), change: "content", type: "file", fields: ["size", "content", "mtime"] }]);
    // A path only the first snapshot has is a path of the comparison all the same.
    const gone = ok(await vaultik(["diff", ...repoArgs(), s1, s2, at("new\\x0aline")], env()));
    expect(gone.stdout.split("\n").slice(2, 3)).toEqual([`-    ${at("new\\x0aline")}`]);
  }, 120_000);

  it("a PATH in neither snapshot is not found (exit 10)", async () => {
    const out = await vaultik(["diff", ...repoArgs(), s1, s2, `${src}/nowhere`], env());
    expect(out.code).toBe(10);
    expect(out.stdout).toBe("");
    expect(out.stderr).toBe(`vaultik: error: ${src}/nowhere: is in neither snapshot ${s1} nor ${s2}\n`);
  }, 120_000);
});

describe("vaultik diff between a format-1 and a format-2 snapshot", () => {
  const FIXTURE = fileURLToPath(new URL("./fixtures/format1/", import.meta.url));
  // The fixture's source directory: a format-2 backup of the same tree must have the same paths.
  const SOURCE = "/tmp/vaultik-format1-fixture/source";
  let work: string;

  beforeAll(async () => {
    work = await mkdtemp(join(tmpdir(), "vaultik-diff-f1-"));
  });
  afterAll(async () => {
    await rm(work, { recursive: true, force: true });
    await rm(dirname(SOURCE), { recursive: true, force: true });
  });

  it("the same tree backed up again in format 2 shows no change and no data; a changed file shows as M", async () => {
    expect(existsSync(dirname(SOURCE)), `${dirname(SOURCE)} is in use`).toBe(false);
    const keyFile = readFileSync(join(FIXTURE, "TEST-KEY-NOT-SECRET.txt"), "utf8").split("\n");
    const identity = keyFile.find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
    const recipient = keyFile.find((l) => l.startsWith("# public key: "))!.slice("# public key: ".length);
    const repo = join(work, "repo");
    cpSync(join(FIXTURE, "repo"), repo, { recursive: true });
    const env = { env: { VAULTIK_PRIVATE_KEY: identity } };
    const expected = JSON.parse(readFileSync(join(FIXTURE, "expected.json"), "utf8")) as { snapshots: { id: string }[] };
    const old = expected.snapshots[1]!.id;
    const target = join(work, "restored");
    ok(await vaultik(["restore", repo, "", old, target], env));
    mkdirSync(dirname(SOURCE));
    // cp -a keeps every time, directories' and symlinks' included, as restore set them.
    execFileSync("cp", ["-a", join(target, SOURCE), SOURCE]);
    const config = join(work, "f2.yml");
    writeFileSync(config, `age_recipient: ${recipient}\nsource_dirs: [${SOURCE}]\nstore: ${repo}\nindex_path: ${work}/state/index.sqlite\nchunk_size: 64KiB\nblob_size_limit: 1MiB\n`);
    const same = (JSON.parse(ok(await vaultik(["backup", config, "--json"])).stdout) as { snapshotId: string }).snapshotId;

    const none = JSON.parse(ok(await vaultik(["diff", repo, "", old, same, SOURCE, "--json"], env)).stdout) as { changes: unknown[]; summary: Summary };
    expect(none.changes).toEqual([]);
    // The same chunks at the same offsets (format 1's summed from its sequence): nothing added or removed.
    expect(none.summary.added).toEqual({ chunks: 0, raw: 0, stored: 0 });
    expect(none.summary.removed).toEqual({ chunks: 0, raw: 0, stored: 0 });

    const notes = join(SOURCE, "notes.txt");
    const before = lstatSync(notes).mtime;
    writeFileSync(notes, "changed after the format-1 backup\n");
    utimesSync(notes, before, before);
    const changed = (JSON.parse(ok(await vaultik(["backup", config, "--json"])).stdout) as { snapshotId: string }).snapshotId;
    const text = ok(await vaultik(["diff", repo, "", old, changed, SOURCE], env));
    expect(text.stdout.split("\n").slice(0, 6)).toEqual([
      `comparing snapshot ${old} to ${changed} at ${SOURCE}:`,
      "",
      `M    ${SOURCE}/notes.txt`,
      "",
      "Files:      0 new,     0 removed,     1 changed",
      "Dirs:       0 new,     0 removed,     0 changed",
    ]);
  }, 120_000);
});
