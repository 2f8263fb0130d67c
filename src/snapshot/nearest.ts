import { distance } from "fastest-levenshtein";
import { displayPath } from "../model/path-bytes.js";
import type { EntryRow, SnapshotReader } from "./read.js";

// "Did you mean": the existing paths of a snapshot nearest to one that is not there.

/** The tail of a not-found message naming the nearest paths, as listings show them. */
export function didYouMean(paths: readonly string[]): string {
  return `; did you mean:\n${paths.map((p) => `  /${displayPath(p)}`).join("\n")}`;
}

/** How many entries a suggestion looks at: enough for any directory people type into, bounded for a snapshot of millions. */
const SCANNED = 50_000;
const SHOWN = 3;

/**
 * Up to SHOWN existing paths nearest to `wanted`. First, below its deepest existing directory,
 * the entries at its depth whose path from there is within a third of its length in edit
 * distance (a difference of case counting half a letter); then entries anywhere with its name.
 * Each scan looks at SCANNED entries at most.
 */
export function nearestPaths(reader: SnapshotReader, wanted: string): string[] {
  const parts = wanted.split("/");
  let base = parts.length - 1;
  while (base > 0 && reader.entry(parts.slice(0, base).join("/"))?.type !== "dir") base--;
  const ancestor = parts.slice(0, base).join("/");
  const rest = parts.slice(base).join("/");
  const name = parts[parts.length - 1]!;
  const limit = Math.max(2, rest.length / 3);
  const scored = new Map<string, number>();
  const scan = (prefix: string, visit: (e: EntryRow) => void) => {
    let seen = 0;
    for (const e of reader.entries(prefix === "" ? undefined : prefix)) {
      if (++seen > SCANNED) break;
      visit(e);
    }
  };
  scan(ancestor, (e) => {
    const segments = e.path.split("/");
    if (segments.length !== parts.length) return;
    const theirs = segments.slice(base).join("/");
    const score = distance(theirs.toLowerCase(), rest.toLowerCase()) + (distance(theirs, rest) > 0 ? 0.5 : 0);
    if (score <= limit) scored.set(e.path, score);
  });
  if (scored.size < SHOWN) {
    scan("", (e) => {
      if (!scored.has(e.path) && e.path.slice(e.path.lastIndexOf("/") + 1) === name) scored.set(e.path, limit + 1);
    });
  }
  return [...scored]
    .sort((a, b) => a[1] - b[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, SHOWN)
    .map(([path]) => path);
}
