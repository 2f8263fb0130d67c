import { IntegrityError } from "../errors.js";
import { encodePath } from "../model/path-bytes.js";
import type { EntryType } from "./schema.js";
import { SnapshotReader, type DiffEntry } from "./read.js";

// What changed between two snapshots, from their databases alone (chunk lists and metadata,
// never a blob): both entry streams come in path order and are merge-joined, so memory holds
// one entry of each side whatever the snapshots' sizes.

export type ChangeKind = "added" | "removed" | "content" | "type" | "metadata";

/** A field a change is about: content ones make a "content" change, the others "metadata". */
export type ChangedField = "size" | "content" | "target" | "rdev" | "mode" | "uid" | "gid" | "user" | "group" | "mtime" | "xattrs";

export interface Change {
  /** Snapshot path (no leading `/`). */
  path: string;
  change: ChangeKind;
  /** The entry's type: in the second snapshot, or in the first for a removed one. */
  type: EntryType;
  /** A type change: the type in the first snapshot. */
  oldType?: EntryType;
  /** Content and metadata changes: every field that differs. */
  fields?: ChangedField[];
}

export interface Counts {
  new: number;
  removed: number;
  changed: number;
}

export interface DiffSummary {
  files: Counts;
  dirs: Counts;
  /** Symlinks, FIFOs and device nodes. */
  others: Counts;
  /** Distinct chunks the second snapshot's files use and the first's do not (raw and stored bytes), and the reverse. */
  added: { chunks: number; raw: number; stored: number };
  removed: { chunks: number; raw: number; stored: number };
}

const CONTENT: ReadonlySet<ChangedField> = new Set(["size", "content", "target", "rdev"]);

/**
 * Every change from `from` to `to` at or below `prefix`, in path order, then the summary.
 * Owner names and extended attributes are compared only when both snapshots are format 2
 * (format 1 records neither: comparing would call every entry changed).
 */
export function* diffSnapshots(from: SnapshotReader, to: SnapshotReader, prefix?: string): Generator<Change, DiffSummary> {
  const summary: DiffSummary = {
    files: { new: 0, removed: 0, changed: 0 },
    dirs: { new: 0, removed: 0, changed: 0 },
    others: { new: 0, removed: 0, changed: 0 },
    added: { chunks: 0, raw: 0, stored: 0 },
    removed: { chunks: 0, raw: 0, stored: 0 },
  };
  const both2 = from.format >= 2 && to.format >= 2;
  const a = ordered(from.diffEntries(prefix), from.object);
  const b = ordered(to.diffEntries(prefix), to.object);
  let x = a.next();
  let y = b.next();
  while (!x.done || !y.done) {
    const order = x.done ? 1 : y.done ? -1 : Buffer.compare(x.value.key, y.value.key);
    let change: Change | undefined;
    if (order < 0) {
      const e = x.value!.entry;
      change = { path: e.path, change: "removed", type: e.type };
      summary[category(e.type)].removed++;
      x = a.next();
    } else if (order > 0) {
      const e = y.value!.entry;
      change = { path: e.path, change: "added", type: e.type };
      summary[category(e.type)].new++;
      y = b.next();
    } else {
      change = compare(x.value!.entry, y.value!.entry, both2);
      if (change) summary[category(change.type)].changed++;
      x = a.next();
      y = b.next();
    }
    if (change) yield change;
  }
  summary.added = SnapshotReader.chunksOnlyIn(to, from, prefix);
  summary.removed = SnapshotReader.chunksOnlyIn(from, to, prefix);
  return summary;
}

function category(type: EntryType): "files" | "dirs" | "others" {
  return type === "file" ? "files" : type === "dir" ? "dirs" : "others";
}

/** The change between two entries at one path, if any: type first, then content, then metadata. */
function compare(a: DiffEntry, b: DiffEntry, both2: boolean): Change | undefined {
  if (a.type !== b.type) return { path: b.path, change: "type", type: b.type, oldType: a.type };
  const fields: ChangedField[] = [];
  const differ = (field: ChangedField, p: unknown, q: unknown) => {
    if (p !== q) fields.push(field);
  };
  if (b.type === "file") {
    differ("size", a.size, b.size);
    differ("content", a.content, b.content);
  }
  // A symlink's target is what it holds; a device node's number is which device it is.
  if (b.type === "symlink") differ("target", a.linkTarget, b.linkTarget);
  if (b.type === "chardev" || b.type === "blockdev") differ("rdev", a.rdev, b.rdev);
  differ("mode", a.mode, b.mode);
  differ("uid", a.uid, b.uid);
  differ("gid", a.gid, b.gid);
  if (both2) {
    differ("user", a.userName, b.userName);
    differ("group", a.groupName, b.groupName);
  }
  differ("mtime", a.mtimeNs, b.mtimeNs);
  if (both2) differ("xattrs", a.xattrs, b.xattrs);
  if (fields.length === 0) return undefined;
  return { path: b.path, change: fields.some((f) => CONTENT.has(f)) ? "content" : "metadata", type: b.type, fields };
}

/**
 * The entries with their path bytes, checked to come in strictly increasing order: the merge
 * depends on it, and only a crafted database (a text path in format 2, which SQLite sorts
 * before every BLOB) breaks it.
 */
function* ordered(entries: Iterable<DiffEntry>, object: string): Generator<{ entry: DiffEntry; key: Buffer }> {
  let last: Buffer | undefined;
  for (const entry of entries) {
    const key = encodePath(entry.path);
    if (last !== undefined && Buffer.compare(last, key) >= 0) {
      throw new IntegrityError(object, `entries are not in path order at ${JSON.stringify(entry.path)} (crafted)`);
    }
    last = key;
    yield { entry, key };
  }
}
