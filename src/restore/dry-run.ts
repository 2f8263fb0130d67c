import { rangedReadBytes, type Frame } from "../pack/reader.js";
import type { FramePlan, SnapshotReader } from "../snapshot/read.js";
import { Pace } from "../util/pace.js";
import { choose, everything } from "./chosen.js";
import type { Selection } from "./selection.js";

// `restore --dry-run`: what a restore would write and read, from the snapshot database alone.
// The same choice of entries and of frames as the Restorer (chosen.ts), the same choice between
// ranged reads and whole blobs (readsRanged), so the figures are the restore's.

/** Below this share of a blob, chunks are fetched by ranged GETs instead of streaming it whole. */
const RANGED_BELOW = 0.25;

/** Whether a restore reads `needed` plaintext bytes of frames from a blob of `blobSize` by ranged GETs. */
export function readsRanged(needed: number, blobSize: number): boolean {
  return needed < RANGED_BELOW * blobSize;
}

export interface DryRunSummary {
  files: number;
  dirs: number;
  symlinks: number;
  special: { fifos: number; chardevs: number; blockdevs: number };
  /** Bytes the restored files hold (a hard-link set's once). */
  bytes: number;
  /** Blobs a restore would read, and about how many ciphertext bytes of them. */
  blobs: number;
  bytesToRead: number;
}

export interface DryRunOptions {
  snapshot: SnapshotReader;
  prefix?: string;
  selection?: Selection;
  signal?: AbortSignal;
  /** Each entry a restore would write, in path order. */
  onEntry: (path: string) => void;
}

export async function dryRun(o: DryRunOptions): Promise<DryRunSummary> {
  const chosen = o.selection ? await choose(o.snapshot, o.prefix, o.selection, o.signal) : everything(o.snapshot, o.prefix);
  const links = chosen.links();
  const s: DryRunSummary = { files: 0, dirs: 0, symlinks: 0, special: { fifos: 0, chardevs: 0, blockdevs: 0 }, bytes: 0, blobs: 0, bytesToRead: 0 };
  const pace = new Pace(o.signal);
  for (const e of o.snapshot.entries(o.prefix)) {
    await pace.tick();
    if (!chosen.has(e)) continue;
    o.onEntry(e.path);
    if (e.type === "file" || e.type === "dir" || e.type === "symlink") s[`${e.type}s`]++;
    else s.special[`${e.type}s`]++;
    if (e.type === "file" && !links.has(e.id)) s.bytes += e.size;
  }
  let blob: { name: string; size: number; frames: Frame[]; needed: number } | undefined;
  const done = () => {
    if (!blob) return;
    s.blobs++;
    s.bytesToRead += readsRanged(blob.needed, blob.size) ? rangedReadBytes(blob.size, blob.frames) : blob.size;
  };
  for (const all of o.snapshot.framePlans(o.prefix)) {
    await pace.tick();
    const p: FramePlan | undefined = chosen.plan(all);
    if (!p || p.unplaced) continue;
    if (blob?.name !== p.blob) {
      done();
      blob = { name: p.blob, size: p.blobSize, frames: [], needed: 0 };
    }
    // A frame used by many files comes in several parts: counted once.
    if (blob.frames[blob.frames.length - 1]?.offset !== p.offset) {
      blob.frames.push({ offset: p.offset, length: p.length, chunks: [] });
      blob.needed += p.length;
    }
  }
  done();
  return s;
}
