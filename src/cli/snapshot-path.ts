import { NotFoundError } from "../errors.js";
import { parseDisplayPath } from "../model/path-bytes.js";
import type { EntryRow, SnapshotReader } from "../snapshot/read.js";

// Paths as users type them on the command line: absolute (`/home/me`) or not, a byte that is not
// UTF-8 as `\xHH` the way listings show it (see displayPath).

/** The snapshot path (no leading or trailing `/`) of a typed path; "" is the root. */
export function snapshotPath(typed: string): string {
  return typed.replace(/^\/+|\/+$/g, "");
}

/** The entry at the path as typed, or else as its listed form reads back (`bad\xff`). */
export function findEntry(reader: SnapshotReader, typed: string): EntryRow {
  const path = snapshotPath(typed);
  const entry = reader.entry(path) ?? reader.entry(parseDisplayPath(path));
  if (!entry) throw new NotFoundError(typed, `is not in snapshot ${reader.meta.id}`);
  return entry;
}
