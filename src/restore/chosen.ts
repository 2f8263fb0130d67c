import type { EntryRow, FramePlan, HardLink, SnapshotReader } from "../snapshot/read.js";
import type { EntryType } from "../snapshot/schema.js";
import { Pace } from "../util/pace.js";
import type { Selection } from "./selection.js";

// What a selective restore (--include/--exclude) takes of a snapshot, worked out from the
// snapshot database before anything is written: the selected entries, the directories above
// them (created so they have somewhere to go), and who holds each hard-link set's content when
// the set's first name is left out. Plans of frames are cut down to the chosen files, so no
// blob or frame is read that only files left out need. Without a selection, everything is.

export interface Chosen {
  /** Whether an entry is restored. */
  has(e: { id: number; type: EntryType; path: string }): boolean;
  /** Further names of hard-linked files among the chosen, each with the chosen name that holds the content. */
  links(): Map<number, HardLink>;
  /** A frame plan with only the targets in chosen files (content moved to a set's new first name); undefined when none is left. */
  plan(p: FramePlan): FramePlan | undefined;
  /** The file a plan's target entry stands for (itself, or the set's chosen first name); undefined when left out. */
  target(fileId: number): number | undefined;
}

/** Everything at or below `prefix`. */
export function everything(snapshot: SnapshotReader, prefix?: string): Chosen {
  return {
    has: () => true,
    links: () => new Map([...snapshot.hardLinks(prefix)].map((l) => [l.id, l])),
    plan: (p) => p,
    target: (id) => id,
  };
}

/** The entries at or below `prefix` that `selection` selects, and the directories above them. */
export async function choose(snapshot: SnapshotReader, prefix: string | undefined, selection: Selection, signal?: AbortSignal): Promise<Chosen> {
  const ids = new Set<number>();
  const above = new Set<string>();
  const pace = new Pace(signal);
  for (const e of snapshot.entries(prefix) as Iterable<EntryRow>) {
    await pace.tick();
    if (!selection.selects(e.path, e.type === "dir")) continue;
    ids.add(e.id);
    for (let p = parentOf(e.path); p !== "" && !above.has(p); p = parentOf(p)) above.add(p);
  }
  selection.assertAllMatched(snapshot);
  // Link sets: the set's first name in the snapshot may be left out while others are chosen; the
  // first chosen one then gets the content, and the others link to it.
  const links = new Map<number, HardLink>();
  const moved = new Map<number, number>();
  const newLeader = new Map<number, HardLink>();
  for (const l of snapshot.hardLinks(prefix)) {
    if (!ids.has(l.id)) continue;
    if (ids.has(l.leaderId)) {
      links.set(l.id, l);
      continue;
    }
    const lead = newLeader.get(l.leaderId);
    if (lead === undefined) {
      newLeader.set(l.leaderId, l);
      moved.set(l.leaderId, l.id);
    } else links.set(l.id, { ...l, leaderId: lead.id, leaderPath: lead.path });
  }
  const target = (fileId: number) => (ids.has(fileId) ? fileId : moved.get(fileId));
  return {
    has: (e) => ids.has(e.id) || (e.type === "dir" && above.has(e.path)),
    links: () => links,
    target,
    plan(p) {
      const keep: number[] = [];
      for (let k = 0; k < p.fileOf.length; k++) if (target(p.fileOf[k]!) !== undefined) keep.push(k);
      if (keep.length === 0) return undefined;
      if (keep.length === p.fileOf.length && moved.size === 0) return p;
      const pick = <T extends Float64Array | Uint32Array>(from: T, make: (n: number) => T, map = (v: number) => v): T => {
        const out = make(keep.length);
        keep.forEach((k, i) => (out[i] = map(from[k]!)));
        return out;
      };
      return {
        ...p,
        chunkOf: p.unplaced ? p.chunkOf : pick(p.chunkOf, (n) => new Uint32Array(n)),
        fileOf: pick(p.fileOf, (n) => new Float64Array(n), (id) => target(id)!),
        fileOffsetOf: p.unplaced ? p.fileOffsetOf : pick(p.fileOffsetOf, (n) => new Float64Array(n)),
      };
    },
  };
}

function parentOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "" : path.slice(0, i);
}
