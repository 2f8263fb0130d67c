// The fidelity helper (test/helpers/fidelity.ts) is the oracle of issue 15's round-trip tests, so
// it is tested on its own: two builds of the tree compare equal, and each kind of damage a
// restore could do is reported, as exactly that difference.
import { createHash } from "node:crypto";
import { chmodSync, closeSync, copyFileSync, lstatSync, lutimesSync, openSync, renameSync, rmdirSync, symlinkSync, unlinkSync, utimesSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { writeAllSync } from "../src/util/fsio.js";
import {
  ACL_DEFAULT,
  buildFidelityTree,
  compareTrees,
  describeTree,
  joinB,
  MiB,
  NAMES,
  SPARSE_SIZE,
  withFd,
  xattr,
} from "./helpers/fidelity.js";
import { useTempDirs } from "./helpers/temp.js";

const sha256 = (text: string): string => createHash("sha256").update(text).digest("hex");
const tempDir = useTempDirs("vaultik-fidelity-");
const asRoot = process.getuid?.() === 0;

async function twoTrees(): Promise<{ src: string; dst: string }> {
  const dir = await tempDir();
  const src = join(dir, "src");
  const dst = join(dir, "dst");
  expect(buildFidelityTree(src, { root: asRoot }).skipped).toEqual(asRoot ? [] : ["device node: needs root", "foreign owners: needs root"]);
  buildFidelityTree(dst, { root: asRoot });
  return { src, dst };
}

/** Runs `change` and puts back the mtimes of `paths` (the entry and its directory), so only the change shows. */
function keepingTimes(paths: Buffer[], change: () => void): void {
  const saved = paths.map((p) => [p, Number(lstatSync(p, { bigint: true }).mtimeNs) / 1e9] as const);
  change();
  for (const [p, t] of saved) {
    if (lstatSync(p).isSymbolicLink()) lutimesSync(p, t, t);
    else utimesSync(p, t, t);
  }
}

describe("fidelity tree and comparator", () => {
  it("two builds compare equal, and the tree holds every case issue 15 lists", async () => {
    const { src, dst } = await twoTrees();
    expect(compareTrees(src, dst)).toEqual([]);

    const facts = describeTree(src);
    const get = (p: string) => {
      const f = facts.get(p);
      expect(f, p).toBeDefined();
      return f!;
    };
    for (const name of ["names/bad-\\xff\\xfe.txt", "names/y\\xff", "names/y\\xef\\xbf\\xbd", "names/new\\x0aline.txt", "empty/empty-dir"]) get(name);
    expect(get("links/pair-1").links).toEqual(["links/pair-1", "links/pair-2"]);
    expect(get("links/other/trio-3").links).toEqual(["links/other/trio-3", "links/trio-1", "links/trio-2"]);
    const sparse = get("sparse/holes-100MiB.bin");
    expect(sparse.size).toBe(SPARSE_SIZE);
    expect(sparse.allocated).toBeLessThanOrEqual(64 * 1024);
    expect(Object.keys(get("xattr/two-user-xattrs.txt").xattrs)).toEqual(["user.vaultik.binary", "user.vaultik.text"]);
    expect(get("acl/default-acl-dir").acl.default).toBe("u::rwx,u:65534:r-x,g::r-x,g:65534:r-x,m::r-x,o::---");
    expect(get("acl/access-acl.txt").acl.access).toBe("u::rw-,u:65534:r--,g::r--,m::r--,o::---");
    expect(get("acl/default-acl-dir/inherits.txt").acl.access).toBeDefined();
    expect(get("special/fifo").type).toBe("fifo");
    expect(get("modes/setuid").mode).toBe(0o4755);
    expect(get("modes/setgid").mode).toBe(0o2755);
    expect(get("modes/sticky-dir").mode).toBe(0o1777);
    expect(get("empty/zero-a").size).toBe(0);
    expect(get("symlinks/bad-target").target).toBe("target-\\xff\\xfe");
    if (asRoot) {
      expect(get("special/null-device")).toMatchObject({ type: "char", rdev: "1:3" });
      expect(get("owners/unnamed.txt")).toMatchObject({ uid: 4242, gid: 4343 });
      expect(get("owners/setuid-nobody")).toMatchObject({ uid: 65534, mode: 0o4755 });
    }
    expect(get("times/nanoseconds.txt").mtimeNs).toBe(1_600_000_000_123_456_789n);
    // Directories were stamped after their contents (with times before 2020), not left at their creation.
    for (const [path, f] of facts) if (f.type === "dir") expect(f.mtimeNs, path).toBeLessThan(1_600_000_000n * 1_000_000_000n);
  });

  it("reports a changed mode", async () => {
    const { src, dst } = await twoTrees();
    chmodSync(join(dst, "modes/private"), 0o640);
    expect(compareTrees(src, dst)).toEqual(["modes/private: mode: source 00600, restored 00640"]);
  });

  it("reports a changed xattr value", async () => {
    const { src, dst } = await twoTrees();
    withFd(joinB(dst, "xattr/two-user-xattrs.txt"), false, (fd) => xattr.setAttrSync(fd, "user.vaultik.text", Buffer.from("other")));
    expect(compareTrees(src, dst)).toEqual([
      'xattr/two-user-xattrs.txt: xattrs: source {"user.vaultik.binary":"00ff0a80","user.vaultik.text":"66697273742076616c7565"}, ' +
        'restored {"user.vaultik.binary":"00ff0a80","user.vaultik.text":"6f74686572"}',
    ]);
  });

  it("reports a dropped default ACL", async () => {
    const { src, dst } = await twoTrees();
    withFd(joinB(dst, "acl/default-acl-dir"), true, (fd) => xattr.removeAttrSync(fd, ACL_DEFAULT));
    expect(compareTrees(src, dst)).toEqual([
      'acl/default-acl-dir: acl: source {"default":"u::rwx,u:65534:r-x,g::r-x,g:65534:r-x,m::r-x,o::---"}, restored {}',
    ]);
  });

  it("reports a hard link broken into a copy, on every member of the set", async () => {
    const { src, dst } = await twoTrees();
    const member = joinB(dst, "links/pair-2");
    keepingTimes([member, joinB(dst, "links")], () => {
      copyFileSync(member, joinB(dst, "links/copy"));
      renameSync(joinB(dst, "links/copy"), member);
    });
    expect(compareTrees(src, dst)).toEqual([
      "links/pair-1: links: source [links/pair-1, links/pair-2], restored not linked",
      "links/pair-2: links: source [links/pair-1, links/pair-2], restored not linked",
    ]);
  });

  it("reports a hole filled with zeros, though the bytes are the same", async () => {
    const { src, dst } = await twoTrees();
    const sparse = joinB(dst, "sparse/holes-100MiB.bin");
    keepingTimes([sparse], () => {
      const fd = openSync(sparse, "r+");
      try {
        writeAllSync(fd, Buffer.alloc(8 * MiB), 0);
      } finally {
        closeSync(fd);
      }
    });
    const diffs = compareTrees(src, dst);
    expect(diffs).toHaveLength(1);
    expect(diffs[0]).toMatch(/^sparse\/holes-100MiB\.bin: allocated: source \d+, restored \d+ bytes on disk$/);
  });

  it("reports a non-UTF-8 name that came back decoded, and a directory mtime", async () => {
    const { src, dst } = await twoTrees();
    // The directory's mtime moves with the rename, and is reported too.
    renameSync(joinB(dst, NAMES.badName), join(dst, "names/bad-\ufffd\ufffd.txt"));
    expect(compareTrees(src, dst)).toEqual([
      `names: mtime: source ${describeTree(src).get("names")!.mtimeNs}, restored ${lstatSync(join(dst, "names"), { bigint: true }).mtimeNs} ns`,
      "names/bad-\\xff\\xfe.txt: presence: file missing from the restore",
      "names/bad-\\xef\\xbf\\xbd\\xef\\xbf\\xbd.txt: presence: file only in the restore",
    ]);
  });

  it("reports a symlink target changed, a FIFO that became a file, and changed bytes", async () => {
    const { src, dst } = await twoTrees();
    const link = joinB(dst, "symlinks/bad-target");
    const fifo = joinB(dst, "special/fifo");
    const plain = joinB(dst, "names/plain.txt");
    keepingTimes([link, fifo, plain, joinB(dst, "symlinks"), joinB(dst, "special")], () => {
      unlinkSync(link);
      symlinkSync("target-\ufffd\ufffd", link);
      unlinkSync(fifo);
      closeSync(openSync(fifo, "w", 0o640));
      const fd = openSync(plain, "r+");
      try {
        writeAllSync(fd, Buffer.from("P"), 0);
      } finally {
        closeSync(fd);
      }
    });
    expect(compareTrees(src, dst)).toEqual([
      `names/plain.txt: content: sha256 source ${sha256("plain\n")}, restored ${sha256("Plain\n")}`,
      "special/fifo: type: source fifo, restored file",
      "symlinks/bad-target: target: source target-\\xff\\xfe, restored target-\\xef\\xbf\\xbd\\xef\\xbf\\xbd",
    ]);
  });

  it("compares mtimes to 1 µs by default (what Node's utimes can set) and to the nanosecond on request", async () => {
    const { src, dst } = await twoTrees();
    const file = join(dst, "times/nanoseconds.txt");
    // Through Node, as a restore in Node sets it: …123456789 ns lands on …123456000.
    utimesSync(file, 1_600_000_000.123456789, 1_600_000_000.123456789);
    expect(compareTrees(src, dst)).toEqual([]);
    expect(compareTrees(src, dst, { mtimeToleranceNs: 0n })).toEqual([
      `times/nanoseconds.txt: mtime: source 1600000000123456789, restored ${lstatSync(file, { bigint: true }).mtimeNs} ns`,
    ]);
    utimesSync(file, 1_600_000_000.123454, 1_600_000_000.123454);
    expect(compareTrees(src, dst)).toEqual(["times/nanoseconds.txt: mtime: source 1600000000123456789, restored 1600000000123454000 ns"]);
  });

  it("reports an entry missing from the restore", async () => {
    const { src, dst } = await twoTrees();
    keepingTimes([joinB(dst, "empty")], () => rmdirSync(joinB(dst, "empty/empty-dir")));
    expect(compareTrees(src, dst)).toEqual(["empty/empty-dir: presence: dir missing from the restore"]);
  });
});
