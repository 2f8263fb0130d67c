import type { X25519Identity } from "../crypto/keys.js";
import type { Repository, SnapshotObject } from "../repo/repository.js";
import type { SnapshotCache } from "../snapshot/cache.js";
import { withSnapshot } from "../snapshot/open.js";
import { SnapshotReader } from "../snapshot/read.js";

// A snapshot's few numbers for the dashboard (logical size, files, new data), read from its
// database once and kept in memory, so a poll downloads only the snapshots it has not seen.

export interface SnapshotSummary {
  /** Sum of its regular files' sizes. */
  size: number;
  files: number;
  /** Stored bytes of the chunks it uses that the host's previous snapshot does not (all, for a first one). */
  newBytes: number;
}

/** Most summaries kept: ~100 bytes each, so the bound is about 20 MB. */
export const SUMMARY_LIMIT = 200_000;

export class SummaryCache {
  /** In insertion order, refreshed on use: the first one is the least recently used. */
  readonly #map = new Map<string, SnapshotSummary | null>();

  constructor(readonly limit = SUMMARY_LIMIT) {}

  get size(): number {
    return this.#map.size;
  }

  /** Known: a summary, or null for a snapshot that could not be read; undefined when not known. */
  get(repo: Repository, s: SnapshotObject, previous: SnapshotObject | undefined): SnapshotSummary | null | undefined {
    const k = key(repo, s, previous);
    const v = this.#map.get(k);
    if (v !== undefined) {
      this.#map.delete(k);
      this.#map.set(k, v);
    }
    return v;
  }

  set(repo: Repository, s: SnapshotObject, previous: SnapshotObject | undefined, summary: SnapshotSummary | null): void {
    const k = key(repo, s, previous);
    this.#map.delete(k);
    this.#map.set(k, summary);
    while (this.#map.size > this.limit) this.#map.delete(this.#map.keys().next().value!);
  }
}

/**
 * Named by the object (key, size, mtime: a replaced object is a miss) and by the previous
 * snapshot newBytes was counted against (a prune that forgot it changes the number).
 */
function key(repo: Repository, s: SnapshotObject, previous: SnapshotObject | undefined): string {
  const obj = (o: SnapshotObject) => `${o.key}\0${o.size}\0${o.mtime}`;
  return `${repo.location}\0${obj(s)}\0${previous === undefined ? "" : obj(previous)}`;
}

/** Reads the summary from the snapshot's database (and its predecessor's, for new data). */
export async function summarize(
  repo: Repository,
  s: SnapshotObject,
  previous: SnapshotObject | undefined,
  identities: readonly X25519Identity[],
  options: { cache?: SnapshotCache; signal?: AbortSignal },
): Promise<SnapshotSummary> {
  return withSnapshot(
    repo,
    s,
    identities,
    async (to) => {
      const totals = to.fileTotals();
      const newBytes =
        previous === undefined
          ? to.chunkTotals().stored
          : await withSnapshot(repo, previous, identities, async (from) => SnapshotReader.chunksOnlyIn(to, from).stored, options.signal, options);
      return { size: totals.bytes, files: totals.files, newBytes: Math.round(newBytes) };
    },
    options.signal,
    options,
  );
}
