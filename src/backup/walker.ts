import type { BigIntStats } from "node:fs";
import { lstat, readdir } from "node:fs/promises";
import { dirname, join, resolve, sep } from "node:path";
import type { Excluder } from "./exclude.js";

// Walks the source directories depth-first in name order, directories before their contents,
// never following symlinks. Unreadable entries are reported and skipped: one bad directory must
// not stop the backup of everything else.

export interface WalkEntry {
  /** Absolute path on this host. */
  abs: string;
  /** Path in the snapshot: the absolute path without its leading "/". */
  path: string;
  stats: BigIntStats;
}

export type WalkEvent =
  | { kind: "entry"; entry: WalkEntry }
  | { kind: "error"; path: string; error: Error }
  /** A socket, FIFO or device: not backed up, like most file-level backup tools. */
  | { kind: "special"; path: string };

const STAT_BATCH = 64;

export function snapshotPath(abs: string): string {
  return abs.split(sep).filter((s) => s !== "").join("/");
}

/** Source dirs made absolute, sorted, with any that lies inside another dropped. */
export function normalizeRoots(sourceDirs: readonly string[]): string[] {
  const sorted = [...new Set(sourceDirs.map((d) => resolve(d)))].sort();
  return sorted.filter((d, i) => !sorted.slice(0, i).some((p) => p === sep || d.startsWith(p + sep)));
}

export async function* walk(sourceDirs: readonly string[], exclude: Excluder, signal?: AbortSignal): AsyncGenerator<WalkEvent> {
  const roots = normalizeRoots(sourceDirs);
  const emitted = new Set<string>();
  for (const root of roots) {
    // The directories above a source dir are recorded too, so a restore recreates their modes.
    const parents: string[] = [];
    for (let d = dirname(root); d !== dirname(d); d = dirname(d)) parents.unshift(d);
    for (const p of parents) {
      if (emitted.has(p)) continue;
      emitted.add(p);
      const ev = await statEvent(p);
      if (ev.kind !== "special") yield ev;
    }
    yield* walkFrom(root, exclude, signal);
  }
}

async function statEvent(abs: string): Promise<WalkEvent> {
  try {
    const stats = await lstat(abs, { bigint: true });
    if (!stats.isFile() && !stats.isDirectory() && !stats.isSymbolicLink()) return { kind: "special", path: snapshotPath(abs) };
    return { kind: "entry", entry: { abs, path: snapshotPath(abs), stats } };
  } catch (error) {
    return { kind: "error", path: snapshotPath(abs), error: error as Error };
  }
}

async function* walkFrom(root: string, exclude: Excluder, signal?: AbortSignal): AsyncGenerator<WalkEvent> {
  const top = await statEvent(root);
  yield top;
  if (top.kind !== "entry" || !top.entry.stats.isDirectory()) return;
  // An explicit stack of directories still to list keeps memory at one listing per level.
  const stack: string[] = [root];
  while (stack.length > 0) {
    signal?.throwIfAborted();
    const dir = stack.pop()!;
    let names: string[];
    try {
      names = (await readdir(dir)).sort();
    } catch (error) {
      yield { kind: "error", path: snapshotPath(dir), error: error as Error };
      continue;
    }
    const subdirs: string[] = [];
    for (let i = 0; i < names.length; i += STAT_BATCH) {
      // lstat runs on the libuv pool; a batch in parallel hides disk latency on a cold cache.
      const paths = names.slice(i, i + STAT_BATCH).map((n) => join(dir, n));
      const batch = await Promise.all(paths.map(statEvent));
      for (const [j, ev] of batch.entries()) {
        const isDir = ev.kind === "entry" && ev.entry.stats.isDirectory();
        if (exclude(paths[j]!, isDir)) continue;
        yield ev;
        if (isDir) subdirs.push(paths[j]!);
      }
    }
    // Reversed onto the stack so they come off in name order.
    for (let i = subdirs.length - 1; i >= 0; i--) stack.push(subdirs[i]!);
  }
}

/** Counts files and bytes a walk would see: the denominator of a progress display. */
export async function scanTotals(sourceDirs: readonly string[], exclude: Excluder, signal?: AbortSignal): Promise<{ files: number; bytes: number }> {
  let files = 0;
  let bytes = 0;
  for await (const ev of walk(sourceDirs, exclude, signal)) {
    if (ev.kind === "entry" && ev.entry.stats.isFile()) {
      files++;
      bytes += Number(ev.entry.stats.size);
    }
  }
  return { files, bytes };
}
