import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chownSync, closeSync, constants, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, statSync, utimesSync, writeSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseRecipient } from "../src/crypto/keys.js";
import { newSnapshotId } from "../src/model/snapshot-id.js";
import { Repository } from "../src/repo/repository.js";
import { SNAPSHOT_SCHEMA_V1 } from "../src/snapshot/schema.js";
import { openFsStore } from "../src/store/fs.js";
import { decodePath } from "../src/model/path-bytes.js";
import { BIN, cleanEnv, collect, vaultik, type CliOptions } from "./helpers/cli.js";
import { craftV2, entryOf, seedRepo, type CraftEntry, type Seeded } from "./helpers/craft-v2.js";

// Issue 15, restore side: what a format-2 snapshot records comes back as it was recorded —
// byte names, holes, hard links, FIFOs and device nodes, owners by name, setuid/setgid/sticky,
// extended attributes and ACLs. Snapshots are crafted from the public key only (helpers/craft-v2).

const xattr = createRequire(import.meta.url)("fs-native-extensions") as { getAttrSync(fd: number, name: string): Buffer | null };

const MiB = 1 << 20;
const A = Buffer.from("A".repeat(700) + "first\n");
const B = Buffer.from("B".repeat(500) + "second\n");
const C = Buffer.from("C".repeat(300) + "third\n");
const PAGE = Buffer.from(Array.from({ length: 4096 }, (_, i) => ((i * 31 + 7) % 251) + 1));
const isRoot = process.getuid?.() === 0;
/** Runs the CLI as an unprivileged user (nobody when the tests run as root). */
const unprivileged: CliOptions = isRoot ? { uid: 65534, gid: 65534, env: { HOME: "/tmp" } } : {};

let dir: string;
let s: Seeded;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-format2-restore-"));
  s = await seedRepo(dir, [A, B, C, PAGE]);
  // The unprivileged runs make their targets here.
  execFileSync("chmod", ["a+rx", dir]);
}, 120_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

it("the user the unprivileged restores run as can reach bin/vaultik.js", () => {
  // Says why plainly, rather than MODULE_NOT_FOUND in every unprivileged test, when the checkout
  // sits in a directory others cannot search (mktemp -d makes 0700; .ci/run opens the path).
  const probe = spawnSync(process.execPath, ["-e", `require("fs").accessSync(${JSON.stringify(BIN)})`], isRoot ? { uid: 65534, gid: 65534 } : {});
  expect(probe.status, `uid ${isRoot ? 65534 : process.getuid?.()} cannot reach ${BIN}: make each directory above it searchable by others (chmod o+x)`).toBe(0);
});

const env = (extra: CliOptions = {}): CliOptions => ({ ...extra, env: { ...extra.env, VAULTIK_PRIVATE_KEY: s.identity } });
/** The internal path string for a name given as bytes (written here as latin1: "\xff" is byte 0xff). */
const raw = (latin1: string) => decodePath(Buffer.from(latin1, "latin1"));
/** A node:fs path for `base` joined with a name given as bytes. */
const at = (base: string, latin1: string) => Buffer.concat([Buffer.from(base + "/"), Buffer.from(latin1, "latin1")]);
let targets = 0;
/** A fresh target directory, owned by the user the CLI runs as. */
function target(options: CliOptions = {}): string {
  const t = join(dir, `target-${++targets}`);
  mkdirSync(t);
  if (options.uid !== undefined) {
    chownSync(t, options.uid, options.gid!);
    // Snapshots crafted since the last look are to be read by that user too.
    execFileSync("chmod", ["-R", "a+rX", s.repo]);
  }
  return t;
}

interface Summary {
  files: number;
  skipped: number;
  special: { fifos: number; chardevs: number; blockdevs: number };
  devicesSkipped: number;
  failed: Record<string, number>;
  errors: { path: string; message: string }[];
  warnings: { path: string; message: string }[];
}

async function restore(id: string, into: string, options: CliOptions = {}, ...flags: string[]): Promise<Summary> {
  const r = await vaultik(["restore", s.repo, "", id, into, "--json", ...flags], env(options));
  expect(r.code, r.stderr + r.stdout).toBe(0);
  return JSON.parse(r.stdout) as Summary;
}

/** Checks a file's bytes piece by piece: `chunks` at their offsets, zeros everywhere else. */
function expectContent(path: string | Buffer, size: number, chunks: readonly { offset: number; data: Buffer }[]): void {
  expect(statSync(path).size).toBe(size);
  const fd = openSync(path, "r");
  try {
    const got = Buffer.alloc(MiB);
    for (let pos = 0; pos < size; pos += MiB) {
      const n = Math.min(MiB, size - pos);
      expect(readSync(fd, got, 0, n, pos)).toBe(n);
      const want = Buffer.alloc(n);
      for (const c of chunks) {
        const from = Math.max(c.offset, pos);
        const to = Math.min(c.offset + c.data.length, pos + n);
        if (from < to) c.data.copy(want, from - pos, from - c.offset, to - c.offset);
      }
      expect(got.subarray(0, n).equals(want), `bytes ${pos}..${pos + n}`).toBe(true);
    }
  } finally {
    closeSync(fd);
  }
}

const allocated = (path: string | Buffer) => statSync(path).blocks * 512;

describe("names that are not UTF-8 (item 1)", () => {
  const names: [string, Buffer][] = [["bad\xff", A], ["y\xff", B], ["y\xef\xbf\xbd", C], ["new\nline", A]];
  let id: string;
  beforeAll(async () => {
    id = await craftV2(s, [
      { entry: entryOf("n", "dir") },
      ...names.map(([n, data], i): CraftEntry => ({
        entry: entryOf(`n/${raw(n)}`, "file", { size: data.length, ...(i === 0 ? { status: "changed" as const } : {}) }),
        chunks: [{ offset: 0, data }],
      })),
      { entry: entryOf(`n/${raw("link\xfe")}`, "symlink", { linkTarget: raw("bad\xff") }) },
      { entry: entryOf(`n/${raw("sub\xfe")}`, "dir") },
      { entry: entryOf(`n/${raw("sub\xfe")}/inner`, "file", { size: B.length }), chunks: [{ offset: 0, data: B }] },
    ]);
  });

  it("restore gives back exactly those byte names, their bytes and the link target; messages show them escaped", async () => {
    const t = target();
    const r = await vaultik(["restore", s.repo, "", id, t], env());
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr).toContain("vaultik: warning: n/bad\\xff: changed while it was being backed up");
    const listed = readdirSync(join(t, "n"), { encoding: "buffer" }).map((b) => b.toString("latin1")).sort();
    expect(listed).toEqual([...names.map(([n]) => n), "link\xfe", "sub\xfe"].sort());
    for (const [n, data] of names) expect(readFileSync(at(join(t, "n"), n))).toEqual(data);
    expect(readlinkSync(at(join(t, "n"), "link\xfe"), { encoding: "buffer" })).toEqual(Buffer.from("bad\xff", "latin1"));
    expect(readFileSync(Buffer.concat([at(join(t, "n"), "sub\xfe"), Buffer.from("/inner")]))).toEqual(B);
    expect(statSync(at(join(t, "n"), "sub\xfe")).mtimeMs).toBe(1_600_000_000_123.456);
  });

  it("fetch takes the path as typed or in its escaped form, to a file, a directory and stdout", async () => {
    const t = target();
    const one = await vaultik(["fetch", s.repo, "", id, "n/bad\\xff", join(t, "one")], env());
    expect(one.code, one.stderr).toBe(0);
    expect(readFileSync(join(t, "one"))).toEqual(A);
    const typed = await vaultik(["fetch", s.repo, "", id, "n/y\uFFFD", join(t, "typed")], env());
    expect(typed.code, typed.stderr).toBe(0);
    expect(readFileSync(join(t, "typed"))).toEqual(C);
    const sub = await vaultik(["fetch", s.repo, "", id, "n/sub\\xfe", join(t, "sub")], env());
    expect(sub.code, sub.stderr).toBe(0);
    expect(readFileSync(join(t, "sub", "inner"))).toEqual(B);
    const into = await vaultik(["fetch", s.repo, "", id, "n/y\\xff", t], env());
    expect(into.code, into.stderr).toBe(0);
    expect(readFileSync(at(t, "y\xff"))).toEqual(B);
    const dump = await vaultik(["fetch", s.repo, "", id, "n/y\\xff", "-"], env());
    expect(dump.code, dump.stderr).toBe(0);
    expect(dump.stdoutBytes).toEqual(B);
    const missing = await vaultik(["fetch", s.repo, "", id, "n/nothing\\xfa", "-"], env());
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toContain("n/nothing\\xfa");
  });
});

describe("holes (item 2)", () => {
  const files: Record<string, { size: number; chunks: { offset: number; data: Buffer }[] }> = {
    sparse: { size: 100 * MiB, chunks: [{ offset: 50 * MiB, data: PAGE }] },
    nochunk: { size: 3 * MiB, chunks: [] },
    tail: { size: 2 * MiB, chunks: [{ offset: 0, data: A }] },
    multi: { size: 6 * MiB + 5, chunks: [{ offset: 0, data: B }, { offset: 2 * MiB, data: PAGE }, { offset: 4 * MiB, data: C }] },
    empty: { size: 0, chunks: [] },
  };
  let id: string;
  beforeAll(async () => {
    id = await craftV2(s, [
      { entry: entryOf("h", "dir") },
      ...Object.entries(files).map(([name, f]): CraftEntry => ({ entry: entryOf(`h/${name}`, "file", { size: f.size }), chunks: f.chunks })),
    ]);
  });

  it("restore writes only the data: bit-exact, and a 100 MiB file with 4 KiB of data takes under 1 MiB", async () => {
    const t = target();
    await restore(id, t);
    for (const [name, f] of Object.entries(files)) {
      expectContent(join(t, "h", name), f.size, f.chunks);
      expect(allocated(join(t, "h", name)), name).toBeLessThan(MiB);
    }
  });

  it("fetch writes the holes too: as holes to a file, as zeros to stdout", async () => {
    const t = target();
    const r = await vaultik(["fetch", s.repo, "", id, "h/sparse", join(t, "sparse")], env());
    expect(r.code, r.stderr).toBe(0);
    expectContent(join(t, "sparse"), files["sparse"]!.size, files["sparse"]!.chunks);
    expect(allocated(join(t, "sparse"))).toBeLessThan(MiB);
    for (const name of ["multi", "nochunk", "tail"]) {
      const dump = await vaultik(["fetch", s.repo, "", id, `h/${name}`, "-"], env());
      expect(dump.code, dump.stderr).toBe(0);
      const f = files[name]!;
      const want = Buffer.alloc(f.size);
      for (const c of f.chunks) c.data.copy(want, c.offset);
      expect(dump.stdoutBytes.equals(want), name).toBe(true);
    }
  });

  it("a re-run verifies each chunk at its offset and zeros elsewhere: intact sparse files are skipped, one with a byte in a hole is rewritten", async () => {
    const t = target();
    await restore(id, t);
    const tampered = join(t, "h", "sparse");
    const before = statSync(tampered);
    const fd = openSync(tampered, constants.O_WRONLY);
    writeSync(fd, Buffer.from("x"), 0, 1, 10 * MiB);
    closeSync(fd);
    utimesSync(tampered, before.atime, before.mtime);
    const again = await restore(id, t);
    expect(again.skipped).toBe(Object.keys(files).length - 1);
    expectContent(tampered, files["sparse"]!.size, files["sparse"]!.chunks);
    expect(allocated(tampered)).toBeLessThan(MiB);
  });
});

describe("hard links (item 3)", () => {
  const AB = Buffer.concat([A, B]);
  let id: string;
  beforeAll(async () => {
    const file = (path: string, data: Buffer[]): CraftEntry => {
      let offset = 0;
      return {
        entry: entryOf(path, "file", { size: data.reduce((n, d) => n + d.length, 0), mode: 0o640 }),
        chunks: data.map((d) => ({ offset: (offset += d.length) - d.length, data: d })),
      };
    };
    const link = (path: string, of: string, size: number): CraftEntry => ({ entry: entryOf(path, "file", { size, mode: 0o640 }), linkOf: of });
    id = await craftV2(s, [
      { entry: entryOf("l", "dir") },
      { entry: entryOf("l/x", "dir") },
      { entry: entryOf("l/y", "dir") },
      file("l/a", [A]),
      link("l/b", "l/a", A.length),
      // The set's content is in two chunks, finished in pass 3; a member sorts before it.
      file("l/x/one", [A, B]),
      link("l/y/two", "l/x/one", AB.length),
      link("l/three", "l/x/one", AB.length),
    ]);
  });

  const expectSets = (t: string) => {
    const [a, b] = ["l/a", "l/b"].map((p) => statSync(join(t, p)));
    expect(b!.ino).toBe(a!.ino);
    expect(a!.nlink).toBe(2);
    const three = ["l/x/one", "l/y/two", "l/three"].map((p) => statSync(join(t, p)));
    expect(new Set(three.map((st) => st.ino)).size).toBe(1);
    expect(three[0]!.ino).not.toBe(a!.ino);
    expect(three[0]!.nlink).toBe(3);
    expect(readFileSync(join(t, "l/a"))).toEqual(A);
    expect(readFileSync(join(t, "l/three"))).toEqual(AB);
    for (const st of [a!, ...three]) {
      expect(st.mode & 0o7777).toBe(0o640);
      expect(st.mtimeMs).toBe(1_600_000_000_123.456);
    }
  };

  it("restore makes each set (2 members, and 3 across directories) links to one inode, bit-exact", async () => {
    const t = target();
    const r = await restore(id, t);
    expect(r.files).toBe(5);
    expectSets(t);
  });

  it("a re-run into the same target keeps them linked", async () => {
    const t = target();
    await restore(id, t);
    await restore(id, t);
    expectSets(t);
  });

  it("when the name holding the content cannot be restored, the other names fail with it, each named", async () => {
    const t = target();
    mkdirSync(join(t, "l/a/in-the-way"), { recursive: true });
    const r = await vaultik(["restore", s.repo, "", id, t, "--json"], env());
    expect(r.code, r.stderr).toBe(1);
    const out = JSON.parse(r.stdout) as Summary;
    expect(out.errors.map((e) => e.path)).toEqual(["l/a", "l/b"]);
    expect(out.errors[1]!.message).toMatch(/not linked: l\/a, the name of its hard-link set that holds the content, was not restored/);
    expect(out.failed["files"]).toBe(2);
    expect(statSync(join(t, "l/three")).nlink).toBe(3);
  });

  it("fetch of one member restores a plain file with the set's bytes", async () => {
    const t = target();
    const r = await vaultik(["fetch", s.repo, "", id, "l/y/two", join(t, "two")], env());
    expect(r.code, r.stderr).toBe(0);
    expect(statSync(join(t, "two")).nlink).toBe(1);
    expect(readFileSync(join(t, "two"))).toEqual(AB);
    const dump = await vaultik(["fetch", s.repo, "", id, "l/b", "-"], env());
    expect(dump.stdoutBytes).toEqual(A);
  });
});

/** st_rdev from major and minor as glibc's makedev encodes them. */
const makedev = (major: number, minor: number) =>
  Number((BigInt(minor) & 0xffn) | ((BigInt(major) & 0xfffn) << 8n) | ((BigInt(minor) & ~0xffn) << 12n) | ((BigInt(major) & ~0xfffn) << 32n));

describe("FIFOs and device nodes (item 4)", () => {
  const mtimeNs = 1_650_000_000_987_654_321n;
  let id: string;
  beforeAll(async () => {
    id = await craftV2(s, [
      { entry: entryOf("s", "dir") },
      { entry: entryOf("s/fifo", "fifo", { mode: 0o640, uid: 4242, gid: 4343, mtimeNs }) },
      { entry: entryOf(`s/${raw("f\xff")}`, "fifo", { mode: 0o600 }) },
      { entry: entryOf("s/null", "chardev", { mode: 0o666, rdev: makedev(1, 3), mtimeNs }) },
      { entry: entryOf("s/big", "chardev", { mode: 0o600, rdev: makedev(300, 70000) }) },
      { entry: entryOf("s/loop", "blockdev", { mode: 0o660, uid: 4242, gid: 4343, rdev: makedev(7, 200) }) },
      { entry: entryOf("s/file", "file", { size: A.length }), chunks: [{ offset: 0, data: A }] },
    ]);
  });

  describe.runIf(isRoot)("as root", () => {
    it("each comes back with its type, device number, owner, mode and mtime, and is counted", async () => {
      const t = target();
      const r = await restore(id, t);
      expect(r.special).toEqual({ fifos: 2, chardevs: 2, blockdevs: 1 });
      expect(r.devicesSkipped).toBe(0);
      const fifo = lstatSync(join(t, "s/fifo"), { bigint: true });
      expect(fifo.isFIFO()).toBe(true);
      expect([fifo.uid, fifo.gid, fifo.mode & 0o7777n, fifo.mtimeNs / 1000n]).toEqual([4242n, 4343n, 0o640n, mtimeNs / 1000n]);
      expect(lstatSync(at(join(t, "s"), "f\xff")).isFIFO()).toBe(true);
      const dev = (p: string) => lstatSync(join(t, p));
      expect(dev("s/null").isCharacterDevice()).toBe(true);
      expect(dev("s/null").rdev).toBe(makedev(1, 3));
      expect(dev("s/null").mode & 0o7777).toBe(0o666);
      expect(dev("s/null").mtimeMs).toBe(1_650_000_000_987.654);
      expect(dev("s/big").rdev).toBe(makedev(300, 70000));
      expect(dev("s/loop").isBlockDevice()).toBe(true);
      expect([dev("s/loop").rdev, dev("s/loop").uid, dev("s/loop").mode & 0o7777]).toEqual([makedev(7, 200), 4242, 0o660]);
      expect(readdirSync(join(t, "s")).length).toBe(6);
    });

    it("the text summary names the special files restored, only the kinds there are", async () => {
      const r = await vaultik(["restore", s.repo, "", id, target()], env());
      expect(r.code, r.stderr).toBe(0);
      expect(r.stderr).toMatch(/restored snapshot \S+: 1 files, 1 directories, 0 symlinks, 2 FIFOs, 2 character devices, 1 block device, /);
      const fetched = await vaultik(["fetch", s.repo, "", id, "s/fifo", join(target(), "p")], env());
      expect(fetched.stderr).toMatch(/: 0 files, 0 directories, 0 symlinks, 1 FIFO, /);
    });
  });

  it.runIf(isRoot)("as root without CAP_MKNOD (root of a user namespace): a device node is skipped the same way", async () => {
    const t = target();
    const child = spawn("unshare", ["--user", "--map-root-user", process.execPath, BIN, "fetch", s.repo, "", id, "s/null", join(t, "null"), "--json"], {
      env: cleanEnv({ VAULTIK_PRIVATE_KEY: s.identity }),
      stdio: ["ignore", "pipe", "pipe"],
    });
    const r = await collect(child);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as Summary;
    expect([out.devicesSkipped, out.special.chardevs, out.errors]).toEqual([1, 0, []]);
    expect(out.warnings.map((w) => w.path)).toEqual(["s/null"]);
    expect(readdirSync(t)).toEqual([]);
  });

  it("without root: FIFOs are made, device nodes are skipped, counted and named, and the restore succeeds", async () => {
    const t = target(unprivileged);
    const r = await restore(id, t, unprivileged);
    expect(r.special).toEqual({ fifos: 2, chardevs: 0, blockdevs: 0 });
    expect(r.devicesSkipped).toBe(3);
    expect(r.errors).toEqual([]);
    expect(r.warnings.map((w) => w.path)).toEqual(["s/big", "s/loop", "s/null"]);
    for (const w of r.warnings) expect(w.message).toMatch(/device node not restored: creating one needs root \(CAP_MKNOD\)/);
    expect(lstatSync(join(t, "s/fifo")).isFIFO()).toBe(true);
    expect(readdirSync(join(t, "s")).sort()).toEqual(["f\uFFFD", "fifo", "file"].sort());
    const text = await vaultik(["restore", s.repo, "", id, target(unprivileged)], env(unprivileged));
    expect(text.code, text.stderr).toBe(0);
    expect(text.stderr).toMatch(/1 files, 1 directories, 0 symlinks, 2 FIFOs, .*; 3 device nodes skipped \(needs root\)/);
  });
});

/** A name and id of this host's passwd or group file. */
function hostName(file: string, name: string): number {
  const line = readFileSync(file, "utf8").split("\n").find((l) => l.startsWith(`${name}:`))!;
  return Number(line.split(":")[2]);
}

describe("modes, owners and times (item 5)", () => {
  const owned = { uid: 4242, gid: 4343, userName: "nobody", groupName: "daemon" };
  const unknown = { uid: 4244, gid: 4345, userName: "vaultik-no-such-user", groupName: "vaultik-no-such-group" };
  let id: string;
  beforeAll(async () => {
    id = await craftV2(s, [
      { entry: entryOf("o", "dir", { mode: 0o1777, ...owned }) },
      { entry: entryOf("o/suid", "file", { size: A.length, mode: 0o4755, ...owned }), chunks: [{ offset: 0, data: A }] },
      { entry: entryOf("o/sgid", "file", { size: B.length, mode: 0o2750, ...unknown }), chunks: [{ offset: 0, data: B }] },
      { entry: entryOf("o/multi", "file", { size: A.length + B.length, mode: 0o6755, ...owned }), chunks: [{ offset: 0, data: A }, { offset: A.length, data: B }] },
      { entry: entryOf("o/link", "symlink", { linkTarget: "suid", ...owned }) },
    ]);
  });

  describe.runIf(isRoot)("as root", () => {
    const [nobody, daemon] = [hostName("/etc/passwd", "nobody"), hostName("/etc/group", "daemon")];

    it("owners map by name where this host knows the name, else by id; setuid, setgid and sticky come back", async () => {
      const t = target();
      await restore(id, t);
      const st = (p: string) => lstatSync(join(t, p));
      expect([st("o/suid").uid, st("o/suid").gid, st("o/suid").mode & 0o7777]).toEqual([nobody, daemon, 0o4755]);
      expect([st("o/multi").uid, st("o/multi").gid, st("o/multi").mode & 0o7777]).toEqual([nobody, daemon, 0o6755]);
      expect([st("o/sgid").uid, st("o/sgid").gid, st("o/sgid").mode & 0o7777]).toEqual([4244, 4345, 0o2750]);
      expect([st("o").uid, st("o").gid, st("o").mode & 0o7777]).toEqual([nobody, daemon, 0o1777]);
      expect([st("o/link").uid, st("o/link").gid]).toEqual([nobody, daemon]);
      const ns = lstatSync(join(t, "o/multi"), { bigint: true }).mtimeNs;
      expect(ns / 1000n).toBe(1_600_000_000_123_456n);
    });

    it("--numeric-owner keeps the recorded ids, for restore and fetch", async () => {
      const t = target();
      await restore(id, t, {}, "--numeric-owner");
      for (const p of ["o", "o/suid", "o/multi", "o/link"]) expect([lstatSync(join(t, p)).uid, lstatSync(join(t, p)).gid], p).toEqual([4242, 4343]);
      expect(lstatSync(join(t, "o/suid")).mode & 0o7777).toBe(0o4755);
      const f = await vaultik(["fetch", s.repo, "", id, "o/suid", join(t, "fetched"), "--numeric-owner"], env());
      expect(f.code, f.stderr).toBe(0);
      expect(lstatSync(join(t, "fetched")).uid).toBe(4242);
      const byName = await vaultik(["fetch", s.repo, "", id, "o/suid", join(t, "by-name")], env());
      expect(byName.code, byName.stderr).toBe(0);
      expect(lstatSync(join(t, "by-name")).uid).toBe(nobody);
    });
  });

  it("without root: setuid is dropped (owners are not restored), setgid and sticky stay", async () => {
    const t = target(unprivileged);
    await restore(id, t, unprivileged);
    const mode = (p: string) => lstatSync(join(t, p)).mode & 0o7777;
    expect([mode("o/suid"), mode("o/sgid"), mode("o/multi"), mode("o")]).toEqual([0o755, 0o2750, 0o2755, 0o1777]);
  });
});

/** A POSIX ACL as the kernel stores it in system.posix_acl_*: version 2, then (tag, perm, id) entries. */
function acl(entries: [tag: number, perm: number, id?: number][]): Buffer {
  const b = Buffer.alloc(4 + 8 * entries.length);
  b.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => {
    b.writeUInt16LE(tag, 4 + 8 * i);
    b.writeUInt16LE(perm, 6 + 8 * i);
    b.writeUInt32LE(id ?? 0xffffffff, 8 + 8 * i);
  });
  return b;
}
const [USER_OBJ, USER, GROUP_OBJ, MASK, OTHER] = [1, 2, 4, 0x10, 0x20];

function readXattr(path: string, name: string): Buffer | null {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    return xattr.getAttrSync(fd, name);
  } catch {
    return null;
  } finally {
    closeSync(fd);
  }
}

describe("extended attributes and ACLs (item 6)", () => {
  const access = acl([[USER_OBJ, 6], [USER, 4, 4242], [GROUP_OBJ, 4], [MASK, 4], [OTHER, 0]]);
  const dflt = acl([[USER_OBJ, 7], [USER, 5, 4242], [GROUP_OBJ, 5], [MASK, 5], [OTHER, 5]]);
  // File capabilities (v2: cap_net_bind_service permitted and effective): a chown removes them,
  // so they must be set after the owner.
  const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  let id: string;
  beforeAll(async () => {
    id = await craftV2(s, [
      { entry: entryOf("x", "dir", { xattrs: [{ name: "system.posix_acl_default", value: dflt }, { name: "user.dir", value: Buffer.from("d") }] }) },
      {
        entry: entryOf("x/f", "file", {
          size: A.length, mode: 0o640,
          xattrs: [{ name: "user.note", value: Buffer.from("hello") }, { name: "user.bin", value: Buffer.from([0, 255, 1]) }, { name: "system.posix_acl_access", value: access }],
        }),
        chunks: [{ offset: 0, data: A }],
      },
      { entry: entryOf("x/t", "file", { size: B.length, xattrs: [{ name: "trusted.vaultik", value: Buffer.from("t") }] }), chunks: [{ offset: 0, data: B }] },
      { entry: entryOf("x/u", "file", { size: C.length, mode: 0o600, xattrs: [{ name: "trusted.other", value: Buffer.from("u") }, { name: "user.u", value: Buffer.from("u") }] }), chunks: [{ offset: 0, data: C }] },
      {
        entry: entryOf("x/cap", "file", { size: A.length + B.length, mode: 0o755, uid: 4242, gid: 4242, xattrs: [{ name: "security.capability", value: cap }] }),
        chunks: [{ offset: 0, data: A }, { offset: A.length, data: B }],
      },
    ]);
  });

  it.runIf(isRoot)("as root: user, trusted and security attributes, access and default ACLs come back, the mode as recorded", async () => {
    const t = target();
    const r = await restore(id, t);
    expect(r.warnings).toEqual([]);
    expect(readXattr(join(t, "x/f"), "user.note")).toEqual(Buffer.from("hello"));
    expect(readXattr(join(t, "x/f"), "user.bin")).toEqual(Buffer.from([0, 255, 1]));
    expect(readXattr(join(t, "x/f"), "system.posix_acl_access")).toEqual(access);
    expect(lstatSync(join(t, "x/f")).mode & 0o7777).toBe(0o640);
    expect(execFileSync("getfacl", ["-cn", join(t, "x/f")], { encoding: "utf8" })).toContain("user:4242:r--");
    expect(readXattr(join(t, "x"), "system.posix_acl_default")).toEqual(dflt);
    expect(readXattr(join(t, "x"), "user.dir")).toEqual(Buffer.from("d"));
    expect(readXattr(join(t, "x/t"), "trusted.vaultik")).toEqual(Buffer.from("t"));
    expect(readXattr(join(t, "x/cap"), "security.capability")).toEqual(cap);
    expect(lstatSync(join(t, "x/cap")).uid).toBe(4242);
  });

  it("a target that refuses some (trusted.* without root): each refusal reported once, the rest restored, exit 0", async () => {
    const t = target(unprivileged);
    const r = await restore(id, t, unprivileged);
    expect(r.errors).toEqual([]);
    const refusals = r.warnings.filter((w) => /extended attribute/.test(w.message));
    expect(refusals.map((w) => w.message.match(/^(\S+) extended attributes not restored \((\w+)/)?.slice(1))).toEqual(
      expect.arrayContaining([["trusted.*", "EPERM"]]),
    );
    expect(refusals.filter((w) => w.message.startsWith("trusted.*"))).toHaveLength(1);
    expect(refusals.find((w) => w.message.startsWith("trusted.*"))!.message).toMatch(/2 entries/);
    expect(readXattr(join(t, "x/f"), "user.note")).toEqual(Buffer.from("hello"));
    expect(readXattr(join(t, "x/f"), "system.posix_acl_access")).toEqual(access);
    expect(readXattr(join(t, "x/u"), "user.u")).toEqual(Buffer.from("u"));
    expect(readFileSync(join(t, "x/u"))).toEqual(C);
    expect(lstatSync(join(t, "x/u")).mode & 0o7777).toBe(0o600);
    const text = await vaultik(["restore", s.repo, "", id, target(unprivileged)], env(unprivileged));
    expect(text.code, text.stderr).toBe(0);
    expect(text.stderr.split("\n").filter((l) => l.includes("trusted.* extended attributes not restored"))).toHaveLength(1);
  });
});

describe("a format-1 snapshot (text paths, chunks in sequence, no holes)", () => {
  let id: string;
  beforeAll(async () => {
    // As vaultik before issue 15 wrote it, from the seeded chunks' locations in the local index.
    const catalog = new Database(s.index, { readonly: true });
    const locate = catalog.prepare(
      "SELECT c.hash, c.offset, c.length, c.raw_offset, c.raw_length, b.name, b.size, b.header_length FROM chunks c JOIN blobs b ON b.id = c.blob_id WHERE c.raw_length = ?",
    );
    const [a, b] = [A, B].map((c) => locate.get(c.length) as { hash: Buffer; offset: number; length: number; raw_offset: number; raw_length: number; name: string; size: number; header_length: number });
    catalog.close();
    id = newSnapshotId(new Date(), "format1");
    const path = join(dir, `${id}.sqlite`);
    const db = new Database(path);
    db.exec(SNAPSHOT_SCHEMA_V1);
    const blob = db.prepare("INSERT OR IGNORE INTO blobs(name, size, header_length) VALUES (?, ?, ?)");
    const chunk = db.prepare("INSERT INTO chunks VALUES (?, (SELECT id FROM blobs WHERE name = ?), ?, ?, ?, ?, 'zstd')");
    for (const l of [a!, b!]) {
      blob.run(l.name, l.size, l.header_length);
      chunk.run(l.hash, l.name, l.offset, l.length, l.raw_offset, l.raw_length);
    }
    const file = db.prepare("INSERT INTO files(path, type, mode, uid, gid, size, mtime_ns, link_target) VALUES (?, ?, ?, 0, 0, ?, 1600000000123456789, ?)");
    file.run("v1", "dir", 0o750, 0, null);
    file.run("v1/ab", "file", 0o640, A.length + B.length, null);
    file.run("v1/link", "symlink", 0o777, 0, "ab");
    db.prepare("INSERT INTO file_chunks VALUES ((SELECT id FROM files WHERE path = 'v1/ab'), ?, ?)").run(0, a!.hash);
    db.prepare("INSERT INTO file_chunks VALUES ((SELECT id FROM files WHERE path = 'v1/ab'), ?, ?)").run(1, b!.hash);
    const meta = { format: 1, id, host: "format1", time: new Date().toISOString(), sourceDirs: ["/"], vaultikVersion: "0.1.0", chunker: "fastcdc-2016", chunkSize: 1 << 20, chunkHash: "sha256", blobHash: "sha256", compression: "zstd" };
    for (const [k, v] of Object.entries(meta)) db.prepare("INSERT INTO meta VALUES (?, ?)").run(k, typeof v === "string" ? v : JSON.stringify(v));
    db.close();
    await new Repository(openFsStore(s.repo)).putSnapshot(id, path, [parseRecipient(s.recipient)]);
    await rm(path);
  });

  it("restores, fetches and dumps bit-exact with the new code", async () => {
    const t = target();
    await restore(id, t);
    expect(readFileSync(join(t, "v1/ab"))).toEqual(Buffer.concat([A, B]));
    expect(readlinkSync(join(t, "v1/link"))).toBe("ab");
    expect([lstatSync(join(t, "v1")).mode & 0o7777, lstatSync(join(t, "v1/ab")).mode & 0o7777]).toEqual([0o750, 0o640]);
    expect(lstatSync(join(t, "v1/ab")).mtimeMs).toBe(1_600_000_000_123.456);
    const dump = await vaultik(["fetch", s.repo, "", id, "v1/ab", "-"], env());
    expect(dump.stdoutBytes).toEqual(Buffer.concat([A, B]));
  });
});
