// Issue 16, `vaultik dump`: a file's bytes on stdout, a directory as a tar stream that GNU tar
// lists and extracts back bit-exact (names that are not UTF-8 included), on the directory store
// and on S3 (s3rver), through the built binary.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { BIN, cleanEnv, vaultik } from "./helpers/cli.js";
import { craftV2, entryOf, seedRepo, type Seeded } from "./helpers/craft-v2.js";
import { diffTrees } from "./helpers/fidelity.js";
import { useTempDirs } from "./helpers/temp.js";
import { DEEP, DIRS, ENTRIES, SPARSE, useTrickyRepo } from "./helpers/tricky-tree.js";

const tempDir = useTempDirs("vaultik-dump-t-");
const fx = useTrickyRepo("dumped");

/** The source tree's snapshot path, as typed (absolute). */
const srcPath = () => fx.r.src;

/**
 * GNU tar (1.34) does not know POSIX's `hdrcharset` PAX keyword, which marks the one member whose
 * name is not UTF-8: it says so once and keeps the name's bytes as they are (asserted below).
 */
const GNU_HDRCHARSET = "tar: Ignoring unknown extended header keyword 'hdrcharset'\n";

/** How GNU tar lists a name in the C locale with --quoting-style=escape. */
function tarEscaped(latin1: string): string {
  let out = "";
  for (const b of Buffer.from(latin1, "latin1")) {
    if (b === 0x5c) out += "\\\\";
    else if (b === 0x0a) out += "\\n";
    else if (b >= 0x20 && b < 0x7f) out += String.fromCharCode(b);
    else out += `\\${b.toString(8).padStart(3, "0")}`;
  }
  return out;
}


describe.each(fx.stores)("vaultik dump on the $name", (store) => {
  const run = (...args: string[]) => vaultik(["dump", ...store.repoArgs(), fx.r.snapshotId, ...args], { env: { ...store.env(), VAULTIK_PRIVATE_KEY: fx.r.identity } });
  /** `vaultik dump … | <shell pipeline>` through bash, for what a user types; the exit statuses of both sides. */
  const piped = (args: string[], then: string) => {
    const cmd = [process.execPath, BIN, "dump", ...store.repoArgs(), fx.r.snapshotId, ...args].map((a) => `'${a.replace(/'/g, "'\\''")}'`).join(" ");
    const p = spawnSync("bash", ["-c", `${cmd} | ${then}; echo "exit:\${PIPESTATUS[*]}" >&2`], {
      env: cleanEnv({ ...store.env(), VAULTIK_PRIVATE_KEY: fx.r.identity, LC_ALL: "C", TZ: "UTC" }),
      maxBuffer: 64 * 1024 * 1024,
    });
    return { stdout: p.stdout, stderr: p.stderr.toString() };
  };

  it("a file: stdout is exactly its bytes (a file of several chunks, a sparse file, a name that is not UTF-8 typed escaped)", async () => {
    const deep = await run(`${srcPath()}/sub/deep.bin`);
    expect(deep.code, deep.stderr).toBe(0);
    expect(deep.stdoutBytes.equals(DEEP)).toBe(true);
    expect(deep.stderr).toBe("");
    const sparse = await run(`${srcPath()}/sparse`);
    expect(sparse.code, sparse.stderr).toBe(0);
    const want = Buffer.alloc(SPARSE.size);
    SPARSE.data.copy(want, SPARSE.at);
    expect(sparse.stdoutBytes.equals(want)).toBe(true);
    const bad = await run(`${srcPath()}/bad\\xff`);
    expect(bad.code, bad.stderr).toBe(0);
    expect(bad.stdout).toBe("a name that is not UTF-8\n");
  });

  it("a directory: a tar stream that tar lists in path order and extracts bit-exact", async () => {
    const rel = srcPath().slice(1);
    const listed = piped([srcPath()], "tar -t --quoting-style=escape");
    expect(listed.stderr).toBe(`${GNU_HDRCHARSET}exit:0 0\n`);
    const expected = [`${rel}/`, ...[...ENTRIES].sort((a, b) => Buffer.compare(Buffer.from(a, "latin1"), Buffer.from(b, "latin1"))).map((e) => `${rel}/${tarEscaped(e)}${DIRS.has(e) ? "/" : ""}`)];
    expect(listed.stdout.toString().split("\n").slice(0, -1)).toEqual(expected);

    const out = await tempDir();
    const x = piped([srcPath()], `tar -x -p -C '${out}'`);
    expect(x.stderr).toBe(`${GNU_HDRCHARSET}exit:0 0\n`);
    const diffs = diffTrees(fx.r.src, join(out, rel), { mtimeToleranceNs: 999_999_999n })
      // tar carries a hole as zeros: the extracted copy takes its full size on disk.
      .filter((d) => !(d.property === "allocated" && d.path === "sparse"))
      .map((d) => d.text);
    expect(diffs).toEqual([]);
  });

  it("--archive tar on a file: a tar of that one file", async () => {
    const listed = piped([`${srcPath()}/plain.txt`, "--archive", "tar"], "tar -tv --quoting-style=escape");
    expect(listed.stderr).toBe("exit:0 0\n");
    const lines = listed.stdout.toString().split("\n").slice(0, -1);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^-rw-r----- .* 11 2023-11-14 22:13 ${srcPath().slice(1)}/plain.txt$`));
  });

  it("the whole snapshot (/) as tar, cut short by `head -c 10`: exit 0, nothing on stderr", () => {
    const cut = piped(["/"], "head -c 10");
    expect(cut.stdout).toHaveLength(10);
    expect(cut.stderr).toBe("exit:0 0\n");
  });

  it("a path that is not in the snapshot: exit 10, nothing on stdout", async () => {
    const missing = await run(`${srcPath()}/nope`);
    expect(missing.code).toBe(10);
    expect(missing.stdout).toBe("");
    expect(missing.stderr).toContain(`${srcPath()}/nope`);
  });
});

it("dump --help names the arguments and shows an example", async () => {
  const help = await vaultik(["dump", "--help"]);
  expect(help.code).toBe(0);
  expect(help.stdout).toContain("SNAPSHOT PATH");
  expect(help.stdout).toContain("--archive <format>");
  expect(help.stdout).toContain("| pg_restore");
});

describe("a crafted snapshot cannot make a member's header lie about its size", () => {
  const A = Buffer.from("A".repeat(700) + "first\n");
  const B = Buffer.from("B".repeat(500) + "second\n");
  let s: Seeded;
  let id: string;
  beforeAll(async () => {
    s = await seedRepo(await mkdtemp(join(tmpdir(), "vaultik-dump-crafted-")), [A, B]);
    id = await craftV2(s, [
      { entry: entryOf("c", "dir") },
      { entry: entryOf("c/ok", "file", { size: A.length }), chunks: [{ offset: 0, data: A }] },
      // Chunks that overlap: a stream cannot go back; the last one ends within the size, so only dump's own check sees it.
      { entry: entryOf("c/overlap", "file", { size: 2 * A.length }), chunks: [{ offset: 0, data: A }, { offset: 10, data: A }] },
      // A chunk that ends past the recorded size.
      { entry: entryOf("c/past", "file", { size: 10 }), chunks: [{ offset: 0, data: B }] },
      { entry: entryOf("c/z", "file", { size: B.length + 100 }), chunks: [{ offset: 100, data: B }] },
      // What ustar fields cannot hold (or tar-stream would change): mode 0, ids past 6 octal
      // digits, an owner name past 31 bytes, a time before 1970; they go in a PAX header.
      {
        entry: entryOf("c/m0", "file", { size: B.length, mode: 0, uid: 1_000_000, gid: 2_000_000, userName: "u".repeat(40), groupName: "g", mtimeNs: -1_000_000_000n }),
        chunks: [{ offset: 0, data: B }],
      },
    ]);
  }, 120_000);
  afterAll(async () => {
    if (s) await rm(s.dir, { recursive: true, force: true });
  });
  const env = () => ({ env: { VAULTIK_PRIVATE_KEY: s.identity } });

  it("the archive leaves those files out, says so on stderr and exits 1; every other member is whole", async () => {
    const out = await vaultik(["dump", s.repo, "", id, "/c"], env());
    expect(out.code).toBe(1);
    expect(out.stderr.split("\n").filter((l) => l !== "").map((l) => l.replace(/: left out of the archive: .*/, ""))).toEqual([
      "vaultik: error: /c/overlap",
      "vaultik: error: /c/past",
    ]);
    const dir = await tempDir();
    const listed = spawnSync("tar", ["-tv", "--quoting-style=escape"], { input: out.stdoutBytes, env: { ...process.env, TZ: "UTC" } });
    expect(listed.status, listed.stderr.toString()).toBe(0);
    expect(listed.stdout.toString().split("\n").filter((l) => l !== "").map((l) => l.replace(/^(\S+) (\S+) +(\d+) (\S+ \S+) (\S+)$/, "$1 $2 $3 $4 $5"))).toEqual([
      "drwxr-xr-x 0/0 0 2020-09-13 12:26 c/",
      `---------- ${"u".repeat(40)}/g ${B.length} 1969-12-31 23:59 c/m0`,
      "-rw-r--r-- 0/0 706 2020-09-13 12:26 c/ok",
      `-rw-r--r-- 0/0 ${B.length + 100} 2020-09-13 12:26 c/z`,
    ]);
    const numeric = spawnSync("tar", ["-tv", "--numeric-owner"], { input: out.stdoutBytes });
    expect(numeric.stdout.toString()).toContain(" 1000000/2000000 ");
    const x = spawnSync("tar", ["-x", "-C", dir], { input: out.stdoutBytes });
    expect(x.status, x.stderr.toString()).toBe(0);
    expect(readFileSync(join(dir, "c/z")).equals(Buffer.concat([Buffer.alloc(100), B]))).toBe(true);
  });

  it("one such file on its own: exit 1, not a byte on stdout", async () => {
    for (const path of ["/c/overlap", "/c/past"]) {
      const out = await vaultik(["dump", s.repo, "", id, path], env());
      expect(out.code).toBe(1);
      expect(out.stdoutBytes.length).toBe(0);
      expect(out.stderr).toMatch(/^vaultik: error: .*(overlaps another|reach byte)/);
    }
  });
});
