import { belowBounds } from "../util/paths.js";
import { parseDisplayPath } from "../model/path-bytes.js";
import type { EntryRow, SnapshotReader } from "./read.js";
import { findEntry, snapshotPath } from "./typed-path.js";

// Directory listings of a snapshot. A snapshot records entries from its source directories down;
// the directories above a source directory (`tmp`, `tmp/x` for `tmp/x/source`) are usually not
// entries, yet a listing of `/` must lead to the source. Such a directory is "implied": listed,
// with no metadata, because entries lie below it.

export interface ImpliedDir {
  path: string;
  type: "dir";
  implied: true;
}

export type Listed = EntryRow | ImpliedDir;

export function isImplied(e: Listed): e is ImpliedDir {
  return "implied" in e;
}

/** The smallest path after `path` in byte order: nothing sorts between them (names hold no NUL). */
const after = (path: string) => `${path}\0`;

function exists(reader: SnapshotReader, path: string): boolean {
  return reader.nextEntry(path, after(path)) !== undefined;
}

/** Whether any entry lies strictly below `dir` ("" is the root). */
export function hasEntriesBelow(reader: SnapshotReader, dir: string): boolean {
  if (dir === "") return reader.nextEntry("") !== undefined;
  const [low, high] = belowBounds(dir);
  return reader.nextEntry(low, high) !== undefined;
}

/**
 * The direct children of `dir` in path order. Hops from one child to the next: after a child
 * `c` with entries below, the next seek starts at `c0` (`/` + 1), past all of them, so a
 * directory with millions of entries deeper down costs one seek per child.
 */
export function* children(reader: SnapshotReader, dir: string): Generator<Listed> {
  const [base, end] = dir === "" ? ["", undefined] : belowBounds(dir);
  let from = base;
  for (let e = reader.nextEntry(from, end); e !== undefined; e = reader.nextEntry(from, end)) {
    const slash = e.path.indexOf("/", base.length);
    if (slash < 0) {
      yield e;
      from = after(e.path);
      continue;
    }
    // An entry deeper down: its child of `dir` is a directory. An entry of that name, if any,
    // sorts before everything below it and was listed already.
    const child = e.path.slice(0, slash);
    if (!exists(reader, child)) yield { path: child, type: "dir", implied: true };
    from = belowBounds(child)[1];
  }
}

/**
 * Everything below `dir`, in path order, each implied directory just before the first entry
 * below it. Streams the entries; a directory that is not on the chain of the last one is looked
 * up (`a`, `a.txt`, `a/x`: `a` was listed before `a.txt`).
 */
export function* descendants(reader: SnapshotReader, dir: string): Generator<Listed> {
  // Directories known to be listed (or `dir` itself), each an ancestor of the next.
  const chain: string[] = [];
  for (const e of reader.entries(dir === "" ? undefined : dir)) {
    if (e.path === dir) continue;
    while (chain.length > 0 && !e.path.startsWith(`${chain[chain.length - 1]!}/`)) chain.pop();
    const known = chain.length > 0 ? chain[chain.length - 1]! : dir;
    for (let j = e.path.indexOf("/", known === "" ? 0 : known.length + 1); j >= 0; j = e.path.indexOf("/", j + 1)) {
      const ancestor = e.path.slice(0, j);
      if (!exists(reader, ancestor)) yield { path: ancestor, type: "dir", implied: true };
      chain.push(ancestor);
    }
    yield e;
    if (e.type === "dir") chain.push(e.path);
  }
}

/** What PATH names: an entry, or a directory only implied by entries below it. */
export function listTarget(reader: SnapshotReader, typed: string): Listed {
  const path = snapshotPath(typed);
  // The root is listed even when the snapshot holds nothing.
  if (path === "") return { path, type: "dir", implied: true };
  for (const candidate of new Set([path, parseDisplayPath(path)])) {
    const entry = reader.nextEntry(candidate, `${candidate}\0`);
    if (entry !== undefined) return entry;
    if (hasEntriesBelow(reader, candidate)) return { path: candidate, type: "dir", implied: true };
  }
  return findEntry(reader, typed);
}
