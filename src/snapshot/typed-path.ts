import { NotFoundError } from "../errors.js";
import { displayPath, parseDisplayPath } from "../model/path-bytes.js";
import { didYouMean, nearestPaths } from "./nearest.js";
import type { EntryRow, SnapshotReader } from "./read.js";

// Paths as users type them on the command line: absolute (`/home/me`) or not, a byte that is not
// UTF-8 as `\xHH` the way listings show it (see displayPath).

/** The snapshot path (no leading or trailing `/`) of a typed path; "" is the root. */
export function snapshotPath(typed: string): string {
  return typed.replace(/^\/+|\/+$/g, "");
}

/** A snapshot path as every listing prints it: absolute, escaped. */
export function shownPath(path: string): string {
  return `/${displayPath(path)}`;
}

/**
 * The entry at the path as typed, or else as its listed form reads back (`bad\xff`). A path
 * that is not there fails with the nearest paths that are ("did you mean").
 */
export function findEntry(reader: SnapshotReader, typed: string): EntryRow {
  const path = snapshotPath(typed);
  const entry = reader.entry(path) ?? reader.entry(parseDisplayPath(path));
  if (!entry) throw notInSnapshot(reader, typed);
  return entry;
}

/** The NotFoundError for a typed path, naming the nearest existing paths. */
export function notInSnapshot(reader: SnapshotReader, typed: string): NotFoundError {
  const near = nearestPaths(reader, parseDisplayPath(snapshotPath(typed)));
  const hint = near.length === 0 ? " (`vaultik ls` lists what it holds)" : didYouMean(near);
  return new NotFoundError(typed, `is not in snapshot ${reader.meta.id}${hint}`);
}

/**
 * The snapshot path PATH names in either of two snapshots (`vaultik diff A B PATH`, the page's
 * diff), looked up in `b` first: restic's rule. "" for the root. Else NotFoundError.
 */
export function findInEither(a: SnapshotReader, b: SnapshotReader, typed: string): string {
  if (snapshotPath(typed) === "") return "";
  for (const r of [b, a]) {
    try {
      return findEntry(r, typed).path;
    } catch (err) {
      if (!(err instanceof NotFoundError)) throw err;
    }
  }
  throw new NotFoundError(typed, `is in neither snapshot ${a.meta.id} nor ${b.meta.id}`);
}
