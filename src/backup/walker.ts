import type { BigIntStats, Stats } from "node:fs";
import { lstatSync, readdirSync, readlinkSync } from "node:fs";
import { SourceError } from "../errors.js";
import { dirname, join, resolve, sep } from "node:path";
import type { CatalogEntry, FileStamp } from "../catalog/db.js";
import { decodePath, fsPath } from "../model/path-bytes.js";
import type { Excluder } from "./exclude.js";

// Walks the source directories depth-first in name order, directories before their contents,
// never following symlinks. Metadata calls are synchronous: an lstat of a cached inode takes a
// couple of microseconds, while its promise-based form costs the main thread about 15 µs of
// bookkeeping, which made the walk the larger part of a backup where nothing changed.
// Unreadable entries are reported and skipped: one bad directory must not stop the backup of
// everything else.
//
// A daemon run after watch events walks incrementally: only directories on the way to a changed
// path are listed and stat'ed; every other subtree comes from the catalog as the last walk saw
// it. Full scans (and every CLI run) list everything, which also catches what a watcher missed.
//
// Names are listed as bytes and carried as internal strings (model/path-bytes), so a name that
// is not UTF-8 is walked, stat'ed and recorded like any other.

export type EntryKind = "file" | "dir" | "symlink" | "fifo" | "chardev" | "blockdev";

export interface WalkEntry {
  /** Absolute path on this host. */
  abs: string;
  /** Path in the snapshot: the absolute path without its leading "/". */
  path: string;
  type: EntryKind;
  mode: number;
  uid: number;
  gid: number;
  stamp: FileStamp;
  /** st_nlink: a file with more than one name is part of a hard-link set. */
  nlink: number;
  /** st_rdev of a device node. */
  rdev?: number;
  /** Bytes allocated (st_blocks × 512); fewer than the size means the file may have holes. */
  allocated?: number;
  linkTarget?: string;
  /** Taken from the catalog instead of the filesystem (incremental walks). */
  fromCatalog?: boolean;
}

export type WalkEvent =
  | { kind: "entry"; entry: WalkEntry }
  /** `abs` is the absolute path: it is shown to the user as is. */
  | { kind: "error"; abs: string; error: Error }
  /** A socket: nothing can restore one, so it is counted and not recorded (as restic does). */
  | { kind: "socket"; abs: string }
  /** Incremental walks: an entry the catalog knows that is no longer there. */
  | { kind: "gone"; abs: string };

/** What changed since the last walk, for an incremental walk. */
export interface DirtySet {
  /** Absolute paths that had events (created, changed, removed). */
  paths: ReadonlySet<string>;
}

export interface WalkOptions {
  signal?: AbortSignal;
  /** With both, walk incrementally: trust the catalog outside dirty paths. */
  dirty?: DirtySet;
  catalog?: {
    subtree(dir: string): Iterable<CatalogEntry>;
    entry(path: string): CatalogEntry | undefined;
    children(dir: string): string[];
  };
}

const STAT_BATCH = 64;

export function snapshotPath(abs: string): string {
  return abs.split(sep).filter((s) => s !== "").join("/");
}

/** Source dirs made absolute, sorted, with any that lies inside another dropped. */
export function normalizeRoots(sourceDirs: readonly string[]): string[] {
  const sorted = [...new Set(sourceDirs.map((d) => resolve(d)))].sort();
  return sorted.filter((d, i) => !sorted.slice(0, i).some((p) => p === sep || d.startsWith(p + sep)));
}

/**
 * Throws a SourceError unless every source dir is a directory now. A missing one (an unmounted
 * disk, a typo) must stop the run before anything is uploaded: its snapshot would be empty yet
 * pass for a backup. A symlink is refused too, since the walk records it and never follows it.
 */
export function checkSourceDirs(sourceDirs: readonly string[]): void {
  for (const dir of normalizeRoots(sourceDirs)) {
    let st: Stats;
    try {
      st = lstatSync(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") throw new SourceError(dir, "does not exist; nothing was backed up", { cause: err });
      if (code === "ENOTDIR") throw new SourceError(dir, "does not exist (a parent is not a directory); nothing was backed up", { cause: err });
      throw new SourceError(dir, `cannot be read (${code ?? String(err)}); nothing was backed up`, { cause: err });
    }
    if (st.isSymbolicLink()) {
      throw new SourceError(dir, `is a symlink (to ${readlinkSync(dir)}); list the directory itself in source_dirs. Nothing was backed up`);
    }
    if (!st.isDirectory()) throw new SourceError(dir, "is not a directory; nothing was backed up");
  }
}

export async function* walk(sourceDirs: readonly string[], exclude: Excluder, options: WalkOptions = {}): AsyncGenerator<WalkEvent> {
  const roots = normalizeRoots(sourceDirs);
  const emitted = new Set<string>();
  const plan = options.dirty && options.catalog ? incrementalPlan(options.dirty) : undefined;
  for (const root of roots) {
    // The directories above a source dir are recorded too, so a restore recreates their modes.
    const parents: string[] = [];
    for (let d = dirname(root); d !== dirname(d); d = dirname(d)) parents.unshift(d);
    for (const p of parents) {
      if (emitted.has(p)) continue;
      emitted.add(p);
      const ev = statEvent(p);
      if (ev.kind !== "socket") yield ev;
    }
    const top = statEvent(root);
    yield top;
    if (top.kind !== "entry" || top.entry.type !== "dir") continue;
    yield* walkDir(root, exclude, options, plan);
  }
}

interface Plan {
  /** Directories to list from the filesystem: every ancestor of a dirty path. */
  listed: Set<string>;
  dirty: ReadonlySet<string>;
}

function incrementalPlan(dirty: DirtySet): Plan {
  const listed = new Set<string>();
  for (const p of dirty.paths) {
    // The parent's listing changed (a name came or went); so did every directory above.
    for (let d = dirname(p); !listed.has(d); d = dirname(d)) {
      listed.add(d);
      if (d === dirname(d)) break;
    }
    listed.add(p); // if p is a directory, list it too: what is inside it is new to us
  }
  return { listed, dirty: dirty.paths };
}

function statEvent(abs: string): WalkEvent {
  try {
    const st = lstatSync(fsPath(abs), { bigint: true });
    const type = typeOf(st);
    if (!type) return { kind: "socket", abs };
    const linkTarget = type === "symlink" ? decodePath(readlinkSync(fsPath(abs), { encoding: "buffer" })) : undefined;
    return { kind: "entry", entry: { abs, path: snapshotPath(abs), type, linkTarget, ...fromStats(st, type) } };
  } catch (error) {
    return { kind: "error", abs, error: error as Error };
  }
}

/** The entry type of a stat; undefined for a socket. */
function typeOf(st: BigIntStats): EntryKind | undefined {
  if (st.isFile()) return "file";
  if (st.isDirectory()) return "dir";
  if (st.isSymbolicLink()) return "symlink";
  if (st.isFIFO()) return "fifo";
  if (st.isCharacterDevice()) return "chardev";
  if (st.isBlockDevice()) return "blockdev";
  return undefined;
}

function fromStats(st: BigIntStats, type: EntryKind): Pick<WalkEntry, "mode" | "uid" | "gid" | "stamp" | "nlink" | "rdev" | "allocated"> {
  const device = type === "chardev" || type === "blockdev";
  return {
    mode: Number(st.mode & 0o7777n),
    uid: Number(st.uid),
    gid: Number(st.gid),
    nlink: Number(st.nlink),
    rdev: device ? Number(st.rdev) : undefined,
    allocated: type === "file" ? Number(st.blocks) * 512 : undefined,
    stamp: { size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs, inode: st.ino, dev: st.dev },
  };
}

function fromCatalog(e: CatalogEntry): WalkEntry {
  const { path: abs, type, mode, uid, gid, stamp, nlink, rdev, linkTarget } = e;
  return { abs, path: snapshotPath(abs), type, mode, uid, gid, stamp, nlink: nlink ?? 1, rdev, linkTarget, fromCatalog: true };
}

async function* walkDir(root: string, exclude: Excluder, options: WalkOptions, plan: Plan | undefined): AsyncGenerator<WalkEvent> {
  // An explicit stack of directories still to list keeps memory at one listing per level.
  const stack: string[] = [root];
  while (stack.length > 0) {
    options.signal?.throwIfAborted();
    const dir = stack.pop()!;
    let names: string[];
    try {
      names = readdirSync(fsPath(dir), { encoding: "latin1" }).map(nameOf).sort();
    } catch (error) {
      yield { kind: "error", abs: dir, error: error as Error };
      continue;
    }
    if (plan) {
      // Listed from disk because something below changed: whatever the catalog still holds
      // here that the directory no longer has was deleted or renamed, and must not come back
      // from the catalog in a later run.
      const present = new Set(names);
      for (const known of options.catalog!.children(dir)) {
        if (!present.has(known.slice(known.lastIndexOf("/") + 1))) yield { kind: "gone", abs: known };
      }
    }
    const subdirs: string[] = [];
    for (let i = 0; i < names.length; i += STAT_BATCH) {
      const paths = names.slice(i, i + STAT_BATCH).map((n) => join(dir, n));
      // Incrementally, a clean entry is taken from the catalog instead (when it has one).
      const batch = paths.map((p) => (plan && !plan.dirty.has(p) ? known(p, options) : undefined) ?? statEvent(p));
      for (const [j, ev] of batch.entries()) {
        const isDir = ev.kind === "entry" && ev.entry.type === "dir";
        if (exclude(paths[j]!, isDir)) continue;
        yield ev;
        if (!isDir) continue;
        if (!plan || plan.listed.has(paths[j]!)) subdirs.push(paths[j]!);
        else yield* catalogSubtree(paths[j]!, exclude, options);
      }
    }
    // Reversed onto the stack so they come off in name order.
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
  }
}

/**
 * A name listed as latin1 (one char per byte, so nothing is lost) as an internal string. Nearly
 * every name is ASCII and is its own string: no Buffer per name, unlike `encoding: "buffer"`.
 */
function nameOf(latin1: string): string {
  return /[^\x00-\x7f]/.test(latin1) ? decodePath(Buffer.from(latin1, "latin1")) : latin1;
}

function known(abs: string, options: WalkOptions): WalkEvent | undefined {
  const e = options.catalog!.entry(abs);
  return e && { kind: "entry", entry: fromCatalog(e) };
}

/** A clean subtree as the catalog recorded it (excludes re-applied: the config may have changed). */
function* catalogSubtree(dir: string, exclude: Excluder, options: WalkOptions): Generator<WalkEvent> {
  const skipped: string[] = [];
  for (const e of options.catalog!.subtree(dir)) {
    if (skipped.some((s) => e.path.startsWith(s))) continue;
    if (exclude(e.path, e.type === "dir")) {
      if (e.type === "dir") skipped.push(`${e.path}/`);
      continue;
    }
    yield { kind: "entry", entry: fromCatalog(e) };
  }
}

/** Counts files and bytes a walk would see: the denominator of a progress display. */
export async function scanTotals(sourceDirs: readonly string[], exclude: Excluder, signal?: AbortSignal): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for await (const ev of walk(sourceDirs, exclude, { signal })) {
    if (ev.kind === "entry" && ev.entry.type === "file") {
      files++;
      bytes += Number(ev.entry.stamp.size);
    }
  }
  return { files, bytes };
}
