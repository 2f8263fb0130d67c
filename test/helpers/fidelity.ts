// The tree issue 15 asks a restore to give back, and an entry-by-entry comparison of two trees.
// Paths are Buffers throughout: a name that is not UTF-8 must reach the comparison as the bytes
// the kernel returned, not as a decoded string in which two names can collide.
//
// xattrs and ACLs are read and written with fs-native-extensions (fd-based getxattr/setxattr;
// Node has none). POSIX ACLs are the kernel's binary system.posix_acl_* attributes, written and
// decoded here, so neither setfacl (Debian `acl`) nor getfattr (`attr`) is needed to run tests.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  chownSync,
  closeSync,
  constants,
  ftruncateSync,
  linkSync,
  lstatSync,
  lutimesSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  symlinkSync,
  utimesSync,
  type BigIntStats,
} from "node:fs";
import { createRequire } from "node:module";
import { writeAllSync } from "../../src/util/fsio.js";
import { pseudoRandom } from "./tree.js";

interface XattrCalls {
  getAttrSync(fd: number, name: string): Buffer | null;
  setAttrSync(fd: number, name: string, value: Buffer): void;
  listAttrsSync(fd: number): string[];
  removeAttrSync(fd: number, name: string): void;
}
export const xattr = createRequire(import.meta.url)("fs-native-extensions") as XattrCalls;

type PathIn = string | Buffer;
const bytes = (p: PathIn): Buffer => (typeof p === "string" ? Buffer.from(p) : p);
export const joinB = (dir: PathIn, name: PathIn): Buffer => Buffer.concat([bytes(dir), Buffer.from("/"), bytes(name)]);

export const MiB = 1024 * 1024;
export const SPARSE_SIZE = 100 * MiB;
export const SPARSE_DATA_AT = 50 * MiB;
export const SPARSE_DATA = 4096;
/** The mtime of times/nanoseconds.txt, in seconds. */
export const NANOSECOND_MTIME = "1600000000.123456789";

/** Readable and unambiguous: printable ASCII as is, a backslash doubled, every other byte \xHH. */
export function escapeBytes(b: Buffer): string {
  let out = "";
  for (const c of b) {
    if (c === 0x5c) out += "\\\\";
    else if (c >= 0x20 && c < 0x7f) out += String.fromCharCode(c);
    else out += `\\x${c.toString(16).padStart(2, "0")}`;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// POSIX ACLs as the kernel stores them (linux/posix_acl_xattr.h): a little-endian u32 version 2,
// then 8-byte entries {u16 tag, u16 perm, u32 id}, in tag order, ids ascending within a tag.

/** getfacl's letter and whether the entry names a user or group, by kernel tag. */
const ACL_TAGS = new Map<number, [kind: string, named: boolean]>([
  [0x01, ["u", false]], // ACL_USER_OBJ
  [0x02, ["u", true]], // ACL_USER
  [0x04, ["g", false]], // ACL_GROUP_OBJ
  [0x08, ["g", true]], // ACL_GROUP
  [0x10, ["m", false]], // ACL_MASK
  [0x20, ["o", false]], // ACL_OTHER
]);
const NO_ID = 0xffffffff;

/** "u::rw-,u:65534:r--,g::r--,m::r--,o::---" (getfacl's short form, numeric ids) to the xattr value. */
export function encodeAcl(text: string): Buffer {
  const entries = text.split(",");
  const out = Buffer.alloc(4 + 8 * entries.length);
  out.writeUInt32LE(2, 0);
  entries.forEach((entry, i) => {
    const [kind, id, perms] = entry.split(":") as [string, string, string];
    const tag = [...ACL_TAGS].find(([, [k, named]]) => k === kind && named === (id !== ""))?.[0];
    if (tag === undefined || perms.length !== 3) throw new Error(`bad ACL entry ${entry}`);
    const perm = (perms[0] === "r" ? 4 : 0) | (perms[1] === "w" ? 2 : 0) | (perms[2] === "x" ? 1 : 0);
    out.writeUInt16LE(tag, 4 + 8 * i);
    out.writeUInt16LE(perm, 6 + 8 * i);
    out.writeUInt32LE(id === "" ? NO_ID : Number(id), 8 + 8 * i);
  });
  return out;
}

export function decodeAcl(value: Buffer): string {
  if (value.length < 4 || (value.length - 4) % 8 !== 0 || value.readUInt32LE(0) !== 2) return `undecoded 0x${value.toString("hex")}`;
  const parts: string[] = [];
  for (let at = 4; at < value.length; at += 8) {
    const tag = value.readUInt16LE(at);
    const perm = value.readUInt16LE(at + 2);
    const [kind, named] = ACL_TAGS.get(tag) ?? [`tag${tag}`, true];
    const rwx = `${perm & 4 ? "r" : "-"}${perm & 2 ? "w" : "-"}${perm & 1 ? "x" : "-"}`;
    parts.push(`${kind}:${named ? String(value.readUInt32LE(at + 4)) : ""}:${rwx}`);
  }
  return parts.join(",");
}

export const ACL_ACCESS = "system.posix_acl_access";
export const ACL_DEFAULT = "system.posix_acl_default";

/** Opens for attribute calls only: O_NONBLOCK so a FIFO does not wait for a writer. */
function openForAttrs(path: Buffer, isDir: boolean): number {
  return openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOFOLLOW | (isDir ? constants.O_DIRECTORY : 0));
}

export function withFd<T>(path: Buffer, isDir: boolean, fn: (fd: number) => T): T {
  const fd = openForAttrs(path, isDir);
  try {
    return fn(fd);
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------------------------
// The tree.

export interface FidelityTree {
  root: string;
  /** Features left out, each with why (missing tool, file system refused, not root). */
  skipped: string[];
}

/** Relative paths (as Buffers) of entries whose names are not plain strings, for tests that mutate them. */
export const NAMES = {
  badName: Buffer.concat([Buffer.from("names/bad-"), Buffer.from([0xff, 0xfe]), Buffer.from(".txt")]),
  yFF: Buffer.concat([Buffer.from("names/y"), Buffer.from([0xff])]),
  yFFFD: Buffer.concat([Buffer.from("names/y"), Buffer.from([0xef, 0xbf, 0xbd])]),
  newline: Buffer.from("names/new\nline.txt"),
  badTarget: Buffer.concat([Buffer.from("target-"), Buffer.from([0xff, 0xfe])]),
};

/**
 * Builds everything issue 15 lists under `root` (created if missing), deterministically: two
 * builds compare equal. `opts.root` adds what needs root: a device node and foreign owners.
 */
export function buildFidelityTree(root: string, opts: { root: boolean }): FidelityTree {
  const skipped: string[] = [];
  const dirs: Buffer[] = [];
  const times: [Buffer, number][] = [];
  let tick = 0;
  // A distinct time per entry, with a sub-second part, so a restore that drops or rounds is seen.
  const stamp = (p: Buffer): void => void times.push([p, 1_600_000_000 + 86_400 * tick++ + 0.123456]);
  const at = (rel: PathIn): Buffer => joinB(root, rel);

  const dir = (rel: string, mode = 0o755): Buffer => {
    const p = at(rel);
    mkdirSync(p, { recursive: true });
    chmodSync(p, mode);
    dirs.push(p);
    return p;
  };
  const file = (rel: PathIn, data: Buffer | string, mode = 0o644): Buffer => {
    const p = at(rel);
    const fd = openSync(p, "w", mode);
    try {
      writeAllSync(fd, bytes(data));
    } finally {
      closeSync(fd);
    }
    chmodSync(p, mode);
    stamp(p);
    return p;
  };

  mkdirSync(root, { recursive: true });
  chmodSync(root, 0o755);

  dir("names");
  file("names/plain.txt", "plain\n");
  file(NAMES.badName, "a name that is not UTF-8\n");
  // Equal after a lossy UTF-8 decode (0xff becomes U+FFFD): must stay two files.
  file(NAMES.yFF, "y then 0xff\n");
  file(NAMES.yFFFD, "y then U+FFFD\n");
  file(NAMES.newline, "a newline in the name\n");

  dir("links");
  dir("links/other");
  file("links/pair-1", "two names, one inode\n");
  linkSync(at("links/pair-1"), at("links/pair-2"));
  file("links/trio-1", "three names, one inode, one of them in another directory\n");
  linkSync(at("links/trio-1"), at("links/trio-2"));
  linkSync(at("links/trio-1"), at("links/other/trio-3"));

  dir("sparse");
  const sparse = at("sparse/holes-100MiB.bin");
  const fd = openSync(sparse, "w", 0o644);
  try {
    ftruncateSync(fd, SPARSE_SIZE);
    writeAllSync(fd, pseudoRandom(SPARSE_DATA, 1515), SPARSE_DATA_AT);
  } finally {
    closeSync(fd);
  }
  chmodSync(sparse, 0o644);
  stamp(sparse);

  dir("xattr");
  const withXattrs = file("xattr/two-user-xattrs.txt", "two user xattrs\n");
  try {
    withFd(withXattrs, false, (fd) => {
      xattr.setAttrSync(fd, "user.vaultik.text", Buffer.from("first value"));
      xattr.setAttrSync(fd, "user.vaultik.binary", Buffer.from([0x00, 0xff, 0x0a, 0x80]));
    });
  } catch (err) {
    skipped.push(`user xattrs: ${(err as Error).message}`);
  }

  dir("acl");
  const aclDir = dir("acl/default-acl-dir", 0o750);
  const aclFile = file("acl/access-acl.txt", "an access ACL\n", 0o640);
  try {
    withFd(aclDir, true, (fd) => xattr.setAttrSync(fd, ACL_DEFAULT, encodeAcl("u::rwx,u:65534:r-x,g::r-x,g:65534:r-x,m::r-x,o::---")));
    withFd(aclFile, false, (fd) => xattr.setAttrSync(fd, ACL_ACCESS, encodeAcl("u::rw-,u:65534:r--,g::r--,m::r--,o::---")));
    // Created after the default ACL, so it inherits an access ACL from it.
    file("acl/default-acl-dir/inherits.txt", "inherited ACL\n", 0o640);
  } catch (err) {
    skipped.push(`POSIX ACLs: ${(err as Error).message}`);
  }

  dir("special");
  execFileSync("mkfifo", ["-m", "0640", at("special/fifo").toString()]);
  stamp(at("special/fifo"));
  if (opts.root) {
    execFileSync("mknod", ["-m", "0666", at("special/null-device").toString(), "c", "1", "3"]);
    stamp(at("special/null-device"));
  } else skipped.push("device node: needs root");

  dir("modes");
  file("modes/setuid", "#!/bin/sh\n", 0o4755);
  file("modes/setgid", "#!/bin/sh\n", 0o2755);
  file("modes/private", "owner only\n", 0o600);
  file("modes/read-only", "read only\n", 0o444);
  dir("modes/sticky-dir", 0o1777);
  dir("modes/setgid-dir", 0o2775);

  if (opts.root) {
    dir("owners");
    // 65534 has a name (nobody) on Debian; 4242:4343 has none: the two ways a restore maps owners.
    for (const [name, uid, gid] of [["nobody", 65534, 65534], ["unnamed", 4242, 4343]] as const) {
      const p = file(`owners/${name}.txt`, `owned by ${uid}:${gid}\n`, 0o640);
      chownSync(p, uid, gid);
    }
    const setuidOther = file("owners/setuid-nobody", "#!/bin/sh\n", 0o755);
    chownSync(setuidOther, 65534, 65534);
    chmodSync(setuidOther, 0o4755); // after chown, which clears it
  } else skipped.push("foreign owners: needs root");

  dir("empty");
  file("empty/zero-a", "");
  file("empty/zero-b", "", 0o600);
  dir("empty/empty-dir");

  dir("symlinks");
  for (const [name, target] of [
    ["to-plain", Buffer.from("../names/plain.txt")],
    ["dangling", Buffer.from("/nonexistent/target")],
    ["bad-target", NAMES.badTarget],
  ] as const) {
    const p = at(`symlinks/${name}`);
    symlinkSync(target, p);
    stamp(p);
  }

  dir("times");
  const nanoseconds = file("times/nanoseconds.txt", "an mtime with all nine digits\n");

  for (const [p, t] of times) {
    if (lstatSync(p).isSymbolicLink()) lutimesSync(p, t, t);
    else utimesSync(p, t, t);
  }
  // Node's utimes stops at microseconds; touch(1) reaches the nanosecond, to tell a restore
  // that keeps nanoseconds from one that keeps microseconds.
  execFileSync("touch", ["-d", `@${NANOSECOND_MTIME}`, nanoseconds.toString()]);
  // Directories last, deepest first: creating an entry moves its parent's mtime.
  const byDepth = [...dirs].sort((a, b) => b.filter((c) => c === 0x2f).length - a.filter((c) => c === 0x2f).length);
  for (const d of [...byDepth, Buffer.from(root)]) {
    const t = 1_500_000_000 + 86_400 * tick++ + 0.654321;
    utimesSync(d, t, t);
  }
  return { root, skipped };
}

// ---------------------------------------------------------------------------------------------
// Describing and comparing.

export type EntryType = "file" | "dir" | "symlink" | "fifo" | "char" | "block" | "socket";

export interface EntryFacts {
  type: EntryType;
  /** Permission and setuid/setgid/sticky bits (07777). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** st_blocks * 512. */
  allocated: number;
  mtimeNs: bigint;
  /** Attribute name to hex value, POSIX ACLs excepted (they are in `acl`). Empty for symlinks and devices: not opened. */
  xattrs: Record<string, string>;
  acl: { access?: string; default?: string };
  /** Escaped paths of every name of this inode inside the tree, when there is more than one. */
  links?: string[];
  sha256?: string;
  /** Escaped bytes of a symlink's target. */
  target?: string;
  /** major:minor of a device. */
  rdev?: string;
}

function typeOf(st: BigIntStats): EntryType {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isFIFO()) return "fifo";
  if (st.isCharacterDevice()) return "char";
  if (st.isBlockDevice()) return "block";
  return "socket";
}

function sha256Of(path: Buffer): string {
  const hash = createHash("sha256");
  const buf = Buffer.allocUnsafe(MiB);
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) hash.update(buf.subarray(0, n));
  } finally {
    closeSync(fd);
  }
  return hash.digest("hex");
}

function attrsOf(path: Buffer, type: EntryType): Pick<EntryFacts, "xattrs" | "acl"> {
  const xattrs: Record<string, string> = {};
  const acl: EntryFacts["acl"] = {};
  // Opening a device has side effects, and a symlink cannot be opened without following it.
  if (type === "symlink" || type === "char" || type === "block" || type === "socket") return { xattrs, acl };
  withFd(path, type === "dir", (fd) => {
    for (const name of xattr.listAttrsSync(fd).sort()) {
      const value = xattr.getAttrSync(fd, name) ?? Buffer.alloc(0);
      if (name === ACL_ACCESS) acl.access = decodeAcl(value);
      else if (name === ACL_DEFAULT) acl.default = decodeAcl(value);
      else xattrs[name] = value.toString("hex");
    }
  });
  return { xattrs, acl };
}

/** Every entry under `root` (and root itself, as "."), keyed by its escaped relative path. */
export function describeTree(root: PathIn): Map<string, EntryFacts> {
  const out = new Map<string, EntryFacts>();
  const inodes = new Map<string, string[]>();
  const visit = (abs: Buffer, rel: string): void => {
    const st = lstatSync(abs, { bigint: true });
    const type = typeOf(st);
    const facts: EntryFacts = {
      type,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      size: Number(st.size),
      allocated: Number(st.blocks) * 512,
      mtimeNs: st.mtimeNs,
      ...attrsOf(abs, type),
    };
    if (type === "file") facts.sha256 = sha256Of(abs);
    if (type === "symlink") facts.target = escapeBytes(readlinkSync(abs, { encoding: "buffer" }));
    if (type === "char" || type === "block") facts.rdev = `${(st.rdev >> 8n) & 0xfffn}:${(st.rdev & 0xffn) | ((st.rdev >> 12n) & ~0xffn)}`;
    if (type !== "dir" && st.nlink > 1n) {
      const key = `${st.dev}:${st.ino}`;
      const members = inodes.get(key) ?? [];
      inodes.set(key, members);
      members.push(rel);
      facts.links = members; // shared until the walk ends, then copied sorted
    }
    out.set(rel, facts);
    if (type === "dir") {
      const names = readdirSync(abs, { encoding: "buffer" }).sort(Buffer.compare);
      for (const name of names) visit(joinB(abs, name), rel === "." ? escapeBytes(name) : `${rel}/${escapeBytes(name)}`);
    }
  };
  visit(bytes(root), ".");
  // A link set is only a set with two names inside the tree; its member list, not raw inodes, is compared.
  for (const facts of out.values()) {
    if (facts.links && facts.links.length < 2) delete facts.links;
    else if (facts.links) facts.links = [...facts.links].sort();
  }
  return out;
}

export interface CompareOptions {
  /** Allowed relative difference of blocks allocated, for files sparse in the source. */
  sparseTolerance?: number;
  /** Added to the tolerance: file systems allocate in blocks and may preallocate a little. */
  sparseSlackBytes?: number;
  /**
   * Allowed mtime difference, inclusive. 1 µs by default: Node's utimes takes seconds as a
   * double and libuv truncates them to whole microseconds, so a restore through Node lands up
   * to 1 µs below the recorded nanoseconds. 0n demands the exact nanosecond.
   */
  mtimeToleranceNs?: bigint;
}

export interface Difference {
  /** Escaped path relative to the roots. */
  path: string;
  property: "presence" | "type" | "mode" | "owner" | "size" | "allocated" | "mtime" | "xattrs" | "acl" | "links" | "content" | "target" | "rdev";
  text: string;
}

const octal = (m: number): string => `0${m.toString(8).padStart(4, "0")}`;
const isSparse = (f: EntryFacts): boolean => f.type === "file" && f.allocated < f.size;

/** Every way `dst` differs from `src`, entry by entry and field by field. */
export function diffTrees(src: PathIn | Map<string, EntryFacts>, dst: PathIn | Map<string, EntryFacts>, opts: CompareOptions = {}): Difference[] {
  const a = src instanceof Map ? src : describeTree(src);
  const b = dst instanceof Map ? dst : describeTree(dst);
  const tolerance = opts.sparseTolerance ?? 0.1;
  const slack = opts.sparseSlackBytes ?? 8192;
  const mtimeTolerance = opts.mtimeToleranceNs ?? 1000n;
  const out: Difference[] = [];
  const diff = (path: string, property: Difference["property"], what: string): void => void out.push({ path, property, text: `${path}: ${property}: ${what}` });
  const was = (s: unknown, d: unknown): string => `source ${String(s)}, restored ${String(d)}`;

  for (const [path, s] of a) {
    const d = b.get(path);
    if (!d) {
      diff(path, "presence", `${s.type} missing from the restore`);
      continue;
    }
    if (s.type !== d.type) {
      diff(path, "type", was(s.type, d.type));
      continue;
    }
    if (s.mode !== d.mode) diff(path, "mode", was(octal(s.mode), octal(d.mode)));
    if (s.uid !== d.uid || s.gid !== d.gid) diff(path, "owner", was(`${s.uid}:${s.gid}`, `${d.uid}:${d.gid}`));
    // A directory's size is the file system's business, a symlink's is its target's length.
    if (s.type === "file" && s.size !== d.size) diff(path, "size", was(s.size, d.size));
    if (isSparse(s) && Math.abs(d.allocated - s.allocated) > tolerance * s.allocated + slack) {
      diff(path, "allocated", `${was(s.allocated, d.allocated)} bytes on disk`);
    }
    const dt = s.mtimeNs - d.mtimeNs;
    if (dt > mtimeTolerance || -dt > mtimeTolerance) diff(path, "mtime", `${was(s.mtimeNs, d.mtimeNs)} ns`);
    const xs = JSON.stringify(s.xattrs);
    const xd = JSON.stringify(d.xattrs);
    if (xs !== xd) diff(path, "xattrs", was(xs, xd));
    if (s.acl.access !== d.acl.access || s.acl.default !== d.acl.default) diff(path, "acl", was(JSON.stringify(s.acl), JSON.stringify(d.acl)));
    if (String(s.links) !== String(d.links)) diff(path, "links", was(s.links ? `[${s.links.join(", ")}]` : "not linked", d.links ? `[${d.links.join(", ")}]` : "not linked"));
    if (s.sha256 !== d.sha256) diff(path, "content", `sha256 ${was(s.sha256, d.sha256)}`);
    if (s.target !== d.target) diff(path, "target", was(s.target, d.target));
    if (s.rdev !== d.rdev) diff(path, "rdev", was(s.rdev, d.rdev));
  }
  for (const [path, d] of b) if (!a.has(path)) diff(path, "presence", `${d.type} only in the restore`);
  return out;
}

/** Human-readable differences between two trees; empty when `dst` gives back all of `src`. */
export function compareTrees(src: PathIn | Map<string, EntryFacts>, dst: PathIn | Map<string, EntryFacts>, opts: CompareOptions = {}): string[] {
  return diffTrees(src, dst, opts).map((d) => d.text);
}
