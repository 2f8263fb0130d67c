import type { ChunkRef } from "../catalog/codec.js";
import type { Catalog, CatalogEntry, FileStamp } from "../catalog/db.js";
import { crashPoint } from "../util/test-points.js";

// What a backup run tells the catalog, and when. The crash-safety rule: a file's chunk list is
// recorded only once every chunk it references is stored, so a killed run never leaves a row
// that later runs trust and skip. Chunks are stored by pack workers (pack-stage.ts) in blobs
// numbered per worker ("lane"); a file waits for the blobs of its lane that hold the chunks it
// stored, and for the blob of any chunk another file stored first. Rows are written in batches,
// one transaction each, because a transaction per file costs more than reading the file.

/** The part of the catalog the bookkeeping uses. */
export type CommitCatalog = Pick<Catalog, "hasChunk" | "recordEntries" | "recordChunks" | "forgetChunks">;

const FILE_BATCH = 500;

interface Waiter {
  path: string;
  stamp: FileStamp;
  chunks: Buffer | readonly ChunkRef[];
  remaining: number;
}

/** What a read file waits for besides the catalog (pack-stage.ts FileResult). */
export interface FileDeps {
  lane: number;
  /** The file's task id in its lane. */
  id: number;
  /** 0: no blob of its lane; n > 0: blobs up to n; -1: a later blob names it (sealed()). */
  needSeq: number;
  /** Chunks another file of this run stores. */
  others: readonly Uint8Array[];
}

interface LaneState {
  /** Every blob up to this one is stored and recorded. */
  done: number;
  /** Blobs stored after a gap (uploads finish out of order). */
  early: Set<number>;
  /** Files waiting for blob n (and all before it). */
  bySeq: Map<number, Waiter[]>;
  /** Files whose last blob is not sealed yet, by task id. */
  unsealed: Map<number, Waiter>;
  /** Sealed blobs that named a file before its result was taken in (task id → blob). */
  namedEarly: Map<number, number>;
}

export class CatalogCommits {
  /** Chunks another file stores in this run, not stored yet, and the files that wait on them. */
  private readonly others = new Map<string, Waiter[]>();
  private readonly lanes: LaneState[] = [];
  private seen: CatalogEntry[] = [];
  private readyFiles: Waiter[] = [];
  private rereads: string[] = [];

  constructor(private readonly catalog: CommitCatalog) {}

  /** Queues an entry's catalog row (its stamp, type, mode; no chunk list). */
  entry(e: CatalogEntry): void {
    this.seen.push(e);
    if (this.seen.length >= FILE_BATCH) this.flush();
  }

  /** A file read whole and unchanged: its chunk list is recorded once every chunk is stored. */
  fileRead(path: string, stamp: FileStamp, chunks: Buffer | readonly ChunkRef[], deps?: FileDeps): void {
    const w: Waiter = { path, stamp, chunks, remaining: 0 };
    for (const hash of deps?.others ?? []) {
      if (this.catalog.hasChunk(hash)) continue;
      const hex = Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString("hex");
      const waiting = this.others.get(hex);
      if (waiting) waiting.push(w);
      else this.others.set(hex, [w]);
      w.remaining++;
    }
    if (deps && deps.needSeq !== 0) {
      const lane = this.lane(deps.lane);
      const early = lane.namedEarly.get(deps.id);
      lane.namedEarly.delete(deps.id);
      const seq = deps.needSeq < 0 ? early : deps.needSeq;
      if (seq === undefined) {
        lane.unsealed.set(deps.id, w);
        w.remaining++;
      } else if (seq > lane.done) {
        this.waitFor(lane, seq, w);
        w.remaining++;
      }
    }
    if (w.remaining === 0) this.ready(w);
  }

  /** Blob `seq` of `lane` is sealed: the files `ids` wait for it (and every blob before it). */
  sealed(laneIndex: number, seq: number, ids: readonly number[]): void {
    const lane = this.lane(laneIndex);
    for (const id of ids) {
      const w = lane.unsealed.get(id);
      if (!w) {
        lane.namedEarly.set(id, seq);
        continue;
      }
      lane.unsealed.delete(id);
      if (seq <= lane.done) this.release(w);
      else this.waitFor(lane, seq, w);
    }
  }

  /** A file that must be read again next time: its row keeps no chunk list. */
  reread(path: string): void {
    this.rereads.push(path);
  }

  /** Blob `seq` of `lane` is stored and recorded, with these chunks. */
  committed(laneIndex: number, seq: number, chunks: readonly { id: string }[]): void {
    const lane = this.lane(laneIndex);
    lane.early.add(seq);
    while (lane.early.delete(lane.done + 1)) {
      lane.done++;
      const waiting = lane.bySeq.get(lane.done);
      lane.bySeq.delete(lane.done);
      for (const w of waiting ?? []) this.release(w);
    }
    if (this.others.size === 0) return;
    for (const c of chunks) {
      const waiting = this.others.get(c.id);
      if (!waiting) continue;
      this.others.delete(c.id);
      for (const w of waiting) this.release(w);
    }
  }

  /** Writes every queued row. */
  flush(): void {
    // Entries first: a chunk list is only stored on a row whose stamp it matches.
    this.catalog.recordEntries(this.seen);
    this.catalog.recordChunks(this.readyFiles);
    this.catalog.forgetChunks(this.rereads);
    crashPoint("after-files-commit");
    this.seen = [];
    this.readyFiles = [];
    this.rereads = [];
  }

  private lane(index: number): LaneState {
    return (this.lanes[index] ??= { done: 0, early: new Set(), bySeq: new Map(), unsealed: new Map(), namedEarly: new Map() });
  }

  private waitFor(lane: LaneState, seq: number, w: Waiter): void {
    const waiting = lane.bySeq.get(seq);
    if (waiting) waiting.push(w);
    else lane.bySeq.set(seq, [w]);
  }

  private release(w: Waiter): void {
    if (--w.remaining === 0) this.ready(w);
  }

  private ready(w: Waiter): void {
    this.readyFiles.push(w);
    if (this.readyFiles.length >= FILE_BATCH) this.flush();
  }
}
