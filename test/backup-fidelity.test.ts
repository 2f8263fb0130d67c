import { execFileSync } from "node:child_process";
import { chmodSync, chownSync, closeSync, linkSync, mkdirSync, openSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import Database from "better-sqlite3";
import fsx from "fs-native-extensions";
import { beforeAll, describe, expect, it } from "vitest";
import { parseIdentity } from "../src/crypto/keys.js";
import { Repository } from "../src/repo/repository.js";
import { withSnapshot } from "../src/snapshot/open.js";
import { openFsStore } from "../src/store/fs.js";
import { vaultik } from "./helpers/cli.js";
import { cliKeys, localRepo, type LocalRepo } from "./helpers/setup.js";
import { useTempDirs } from "./helpers/temp.js";
import { pseudoRandom } from "./helpers/tree.js";
import { writeAllSync } from "../src/util/fsio.js";

// What a backup records of the file system it walks (issue 15, backup side): names as the
// kernel's bytes, hard-link sets, holes, special files, owner names, extended attributes and
// ACLs, and metadata-only changes picked up by ctime without reading content again.

let keys: { identity: string; recipient: string };
const tempDir = useTempDirs("vaultik-fidelity-");
const isRoot = process.getuid?.() === 0;

beforeAll(async () => {
  keys = await cliKeys();
});

interface Summary {
  snapshotId: string;
  filesNew: number;
  filesChanged: number;
  filesUnchanged: number;
  bytesRead: number;
  bytesNew: number;
  sockets: number;
  errors: { path: string; message: string }[];
}

async function backup(r: LocalRepo): Promise<Summary> {
  const out = await vaultik(["backup", r.config, "--json"]);
  expect(out.code, out.stderr).toBe(0);
  return JSON.parse(out.stdout) as Summary;
}

interface FileRow {
  id: number;
  path: Buffer;
  type: string;
  mode: number;
  uid: number;
  gid: number;
  user_name: string | null;
  group_name: string | null;
  size: number;
  link_target: Buffer | null;
  rdev: number | null;
  link_id: number | null;
}

/** The snapshot's database rows, decrypted with the test key. */
async function snapshotRows(r: LocalRepo, id: string) {
  const repo = new Repository(openFsStore(r.repo));
  const snap = await repo.findSnapshot(id);
  return withSnapshot(repo, snap, [parseIdentity(r.identity)], async (reader) => {
    const db = new Database(reader.path, { readonly: true });
    try {
      const files = db.prepare("SELECT * FROM files ORDER BY id").all() as FileRow[];
      const chunks = db.prepare("SELECT file_id AS fileId, offset FROM file_chunks ORDER BY file_id, offset").all() as { fileId: number; offset: number }[];
      const xattrs = db.prepare("SELECT file_id AS fileId, name, value FROM xattrs").all() as { fileId: number; name: Buffer; value: Buffer }[];
      const stats = JSON.parse(db.prepare("SELECT value FROM meta WHERE key = 'stats'").pluck().get() as string) as Record<string, number>;
      return { files, chunks, xattrs, stats };
    } finally {
      db.close();
    }
  });
}

/** The row of a source path (absolute, as bytes or text). */
function rowOf(files: FileRow[], abs: string | Buffer): FileRow | undefined {
  const want = Buffer.concat([typeof abs === "string" ? Buffer.from(abs) : abs]).subarray(1);
  return files.find((f) => Buffer.compare(f.path, want) === 0);
}

describe("what a backup records", () => {
  it("names that are not UTF-8 (and one that decodes to U+FFFD) are backed up as distinct byte paths", async () => {
    const r = await localRepo(await tempDir(), keys);
    const dir = Buffer.from(r.source);
    const raw = Buffer.concat([dir, Buffer.from("/y\xff", "latin1")]);
    const replacement = Buffer.concat([dir, Buffer.from("/y\xef\xbf\xbd", "latin1")]);
    writeFileSync(raw, "raw byte");
    writeFileSync(replacement, "replacement character");
    const rawDir = Buffer.concat([dir, Buffer.from("/d\xfe", "latin1")]);
    mkdirSync(rawDir);
    writeFileSync(Buffer.concat([rawDir, Buffer.from("/inner")]), "inside");
    const target = Buffer.from("../t\x80rget", "latin1");
    symlinkSync(target, Buffer.concat([dir, Buffer.from("/link")]));

    const s = await backup(r);
    expect(s.errors).toEqual([]);
    expect(s.filesNew).toBe(3);
    const listed = await vaultik(["snapshots", r.repo]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(listed.stdout).toContain(s.snapshotId);

    const { files } = await snapshotRows(r, s.snapshotId);
    expect(files.every((f) => Buffer.isBuffer(f.path))).toBe(true);
    expect(rowOf(files, raw)?.size).toBe(8);
    expect(rowOf(files, replacement)?.size).toBe(21);
    expect(rowOf(files, raw)?.id).not.toBe(rowOf(files, replacement)?.id);
    expect(rowOf(files, Buffer.concat([rawDir, Buffer.from("/inner")]))?.type).toBe("file");
    expect(rowOf(files, Buffer.concat([dir, Buffer.from("/link")]))?.link_target).toEqual(target);
    // A second run finds them all unchanged in the index (its paths are byte-exact too).
    const again = await backup(r);
    expect(again).toMatchObject({ filesUnchanged: 3, filesNew: 0, filesChanged: 0, bytesRead: 0 });
  });

  it("hard links: one chunk list per inode, link_id on every member, later names not read", async () => {
    const r = await localRepo(await tempDir(), keys);
    for (const d of ["a", "b", "c"]) mkdirSync(join(r.source, d));
    writeFileSync(join(r.source, "a", "one"), pseudoRandom(100_000, 1));
    linkSync(join(r.source, "a", "one"), join(r.source, "a", "two"));
    linkSync(join(r.source, "a", "one"), join(r.source, "b", "three"));
    writeFileSync(join(r.source, "c", "x"), pseudoRandom(50_000, 2));
    linkSync(join(r.source, "c", "x"), join(r.source, "c", "y"));

    const s = await backup(r);
    expect(s.bytesRead).toBe(150_000);
    const { files, chunks, stats } = await snapshotRows(r, s.snapshotId);
    const set1 = ["a/one", "a/two", "b/three"].map((p) => rowOf(files, join(r.source, p))!);
    const set2 = ["c/x", "c/y"].map((p) => rowOf(files, join(r.source, p))!);
    for (const set of [set1, set2]) {
      expect(set.map((f) => f.link_id)).toEqual(set.map(() => set[0]!.id));
      const owners = new Set(chunks.filter((c) => set.some((f) => f.id === c.fileId)).map((c) => c.fileId));
      expect([...owners]).toEqual([set[0]!.id]);
      expect(set.map((f) => f.size)).toEqual(set.map(() => set[0]!.size));
    }
    expect(stats["hardLinks"]).toBe(3);
    // Unchanged: still linked, nothing read.
    const again = await backup(r);
    expect(again.bytesRead).toBe(0);
    const second = await snapshotRows(r, again.snapshotId);
    expect(["a/one", "a/two", "b/three"].map((p) => rowOf(second.files, join(r.source, p))!.link_id)).toEqual(set1.map(() => rowOf(second.files, join(r.source, "a/one"))!.id));
  });

  it("several insert batches of rows: every file, chunk, link and xattr row lands on its own file, first run and unchanged re-run", async () => {
    // The snapshot builder writes rows in multi-row INSERTs of 64; links and xattrs fall inside
    // and across batches here, and files of many chunks fill the chunk batch on their own.
    const r = await localRepo(await tempDir(), keys);
    const names = Array.from({ length: 300 }, (_, i) => `f${String(i).padStart(3, "0")}`);
    for (const [i, n] of names.entries()) {
      const abs = join(r.source, n);
      if (i % 50 === 7) linkSync(join(r.source, names[i - 1]!), abs); // a link to the row just before
      else if (i === 260) linkSync(join(r.source, names[3]!), abs); // a link to a row flushed long ago
      else writeFileSync(abs, i % 97 === 0 ? pseudoRandom(1_500_000, i) : `file ${i}\n`);
      if (i % 40 === 5) setAttr(abs, "user.n", `v${i}`);
    }
    for (const run of [0, 1]) {
      const s = await backup(r);
      if (run === 1) expect(s.bytesRead).toBe(0);
      const { files, chunks, xattrs, stats } = await snapshotRows(r, s.snapshotId);
      expect(stats["files"]).toBe(300);
      for (const [i, n] of names.entries()) {
        const row = rowOf(files, join(r.source, n))!;
        const leader = i % 50 === 7 ? names[i - 1]! : i === 260 ? names[3]! : undefined;
        const content = leader ? names.indexOf(leader) : i;
        expect(row.size, n).toBe(content % 97 === 0 ? 1_500_000 : `file ${content}\n`.length);
        const own = (id: number) => chunks.filter((c) => c.fileId === id).length;
        if (leader) {
          // Whichever name the walk met first holds the chunks; both carry its id (readdir order).
          const other = rowOf(files, join(r.source, leader))!;
          expect(row.link_id, n).toBe(other.link_id);
          expect([row.id, other.id], n).toContain(row.link_id);
          expect(own(row.id) + own(other.id), n).toBe(1);
        } else if (i % 97 === 0) expect(own(row.id), n).toBeGreaterThan(10);
        else if (!names.some((m, j) => (j % 50 === 7 && j - 1 === i) || (j === 260 && i === 3))) expect(own(row.id), n).toBe(1);
        const attrs = xattrs.filter((x) => x.fileId === row.id).map((x) => `${x.name.toString()}=${x.value.toString()}`);
        const leaderIndex = leader ? names.indexOf(leader) : i;
        expect(attrs, n).toEqual(leaderIndex % 40 === 5 || i % 40 === 5 ? [`user.n=v${i % 40 === 5 ? i : leaderIndex}`] : []);
      }
    }
  });

  it("a 100 MiB sparse file is read for its data only and stored with its hole", async () => {
    const r = await localRepo(await tempDir(), keys);
    const path = join(r.source, "sparse.img");
    const fd = openSync(path, "w");
    try {
      writeAllSync(fd, pseudoRandom(4096, 3), 50 << 20);
      (await import("node:fs")).ftruncateSync(fd, 100 << 20);
    } finally {
      closeSync(fd);
    }
    const s = await backup(r);
    expect(s.bytesRead).toBeLessThan(1 << 20);
    expect(s.bytesNew).toBeLessThan(1 << 20);
    const { files, chunks } = await snapshotRows(r, s.snapshotId);
    const row = rowOf(files, path)!;
    expect(row.size).toBe(100 << 20);
    expect(chunks.filter((c) => c.fileId === row.id).map((c) => c.offset)).toEqual([50 << 20]);
    // Unchanged: the hole comes from the index, not from a contiguous chunk list.
    const again = await backup(r);
    expect(again.bytesRead).toBe(0);
    const second = await snapshotRows(r, again.snapshotId);
    const row2 = rowOf(second.files, path)!;
    expect(second.chunks.filter((c) => c.fileId === row2.id).map((c) => c.offset)).toEqual([50 << 20]);
  });

  it("FIFOs and devices are recorded, sockets skipped and counted", async () => {
    const r = await localRepo(await tempDir(), keys);
    execFileSync("mkfifo", [join(r.source, "fifo")]);
    if (isRoot) execFileSync("mknod", [join(r.source, "null"), "c", "1", "3"]);
    const server: Server = createServer();
    await new Promise<void>((res) => server.listen(join(r.source, "sock"), res));
    let s: Summary;
    try {
      s = await backup(r);
    } finally {
      await new Promise<void>((res) => server.close(() => res()));
    }
    expect(s.sockets).toBe(1);
    expect(s.errors).toEqual([]);
    const { files, stats } = await snapshotRows(r, s.snapshotId);
    expect(rowOf(files, join(r.source, "fifo"))).toMatchObject({ type: "fifo", size: 0 });
    expect(rowOf(files, join(r.source, "sock"))).toBeUndefined();
    expect(stats["sockets"]).toBe(1);
    if (isRoot) {
      expect(rowOf(files, join(r.source, "null"))).toMatchObject({ type: "chardev", size: 0, rdev: 259 });
      expect(stats["special"]).toBe(2);
    }
  });

  it("owners by name, and setuid/setgid/sticky bits", async () => {
    const r = await localRepo(await tempDir(), keys);
    const known = join(r.source, "known");
    const unknown = join(r.source, "unknown");
    writeFileSync(known, "k");
    writeFileSync(unknown, "u");
    mkdirSync(join(r.source, "tmp"));
    chmodSync(join(r.source, "tmp"), 0o1777);
    chmodSync(known, 0o6755);
    const self = { uid: process.getuid!(), gid: process.getgid!() };
    const name = (cmd: string[]) => execFileSync("id", cmd, { encoding: "utf8" }).trim();
    if (isRoot) chownSync(unknown, 54_321, 54_321);
    const s = await backup(r);
    const { files } = await snapshotRows(r, s.snapshotId);
    expect(rowOf(files, known)).toMatchObject({ uid: self.uid, gid: self.gid, user_name: name(["-un"]), group_name: name(["-gn"]), mode: 0o6755 });
    expect(rowOf(files, join(r.source, "tmp"))!.mode).toBe(0o1777);
    if (isRoot) expect(rowOf(files, unknown)).toMatchObject({ uid: 54_321, user_name: null, group_name: null });
  });

  it("extended attributes and ACLs are recorded; a metadata-only change is picked up without reading content", async () => {
    const r = await localRepo(await tempDir(), keys);
    const file = join(r.source, "f.bin");
    writeFileSync(file, pseudoRandom(200_000, 4));
    setAttr(file, "user.note", "hello");
    const shared = join(r.source, "shared");
    mkdirSync(shared);
    execFileSync("setfacl", ["-d", "-m", "u:nobody:rx", shared]);
    execFileSync("setfacl", ["-m", "u:nobody:r", file]);

    const first = await backup(r);
    const one = await snapshotRows(r, first.snapshotId);
    const attrs = (rows: typeof one, abs: string) => {
      const id = rowOf(rows.files, abs)!.id;
      return Object.fromEntries(rows.xattrs.filter((x) => x.fileId === id).map((x) => [x.name.toString(), x.value]));
    };
    expect(attrs(one, file)["user.note"]?.toString()).toBe("hello");
    expect(Object.keys(attrs(one, file))).toContain("system.posix_acl_access");
    expect(Object.keys(attrs(one, shared))).toContain("system.posix_acl_default");

    // chmod and a new xattr change ctime only: the content is not read again.
    chmodSync(file, 0o600);
    setAttr(file, "user.more", "more");
    const second = await backup(r);
    expect(second.bytesRead).toBe(0);
    expect(second.bytesNew).toBe(0);
    const two = await snapshotRows(r, second.snapshotId);
    expect(rowOf(two.files, file)!.mode).toBe(0o600);
    expect(attrs(two, file)["user.more"]?.toString()).toBe("more");
    expect(attrs(two, file)["user.note"]?.toString()).toBe("hello");
    expect(two.chunks.filter((c) => c.fileId === rowOf(two.files, file)!.id)).toHaveLength(
      one.chunks.filter((c) => c.fileId === rowOf(one.files, file)!.id).length,
    );

    // Unchanged now: xattrs come from the index.
    const third = await backup(r);
    expect(third.bytesRead).toBe(0);
    const three = await snapshotRows(r, third.snapshotId);
    expect(attrs(three, file)["user.more"]?.toString()).toBe("more");
    expect(Object.keys(attrs(three, shared))).toContain("system.posix_acl_default");
  });
});

function setAttr(path: string, name: string, value: string): void {
  const fd = openSync(path, "r");
  try {
    fsx.setAttrSync(fd, name, value);
  } finally {
    closeSync(fd);
  }
}
