import type { ChunkRef } from "../catalog/codec.js";
import type { Catalog, CatalogEntry, FileStamp } from "../catalog/db.js";
import type { ChunkId } from "../model/ids.js";
import type { SealedBlob } from "../pack/writer.js";
import { crashPoint } from "../util/test-points.js";

// What a backup run tells the catalog, and when. The crash-safety rule: a file's chunk list is
// recorded only once every chunk it references is stored, so a killed run never leaves a row
// that later runs trust and skip. Chunks this run packed but has not stored yet are "pending";
// a file using one waits for its blob to commit. Rows are written in batches, one transaction
// each, because a transaction per file costs more than reading the file.

/** The part of the catalog the bookkeeping uses. */
export type CommitCatalog = Pick<Catalog, "hasChunk" | "recordEntries" | "recordChunks" | "forgetChunks">;

const FILE_BATCH = 500;

interface Waiter {
  path: string;
  stamp: FileStamp;
  chunks: readonly ChunkRef[];
  remaining: number;
}

export class CatalogCommits {
  /** Chunks packed in this run whose blob is not yet stored, and the files waiting on them. */
  private readonly pending = new Map<string, Waiter[]>();
  private seen: CatalogEntry[] = [];
  private readyFiles: Waiter[] = [];
  private rereads: string[] = [];

  constructor(private readonly catalog: CommitCatalog) {}

  /**
   * True when neither the repository nor this run has the chunk yet: the caller packs it, and it
   * is pending from now on (a chunk another file packed moments ago is pending, not new).
   */
  claim(hash: Buffer, hex: ChunkId): boolean {
    if (this.pending.has(hex) || this.catalog.hasChunk(hash)) return false;
    this.pending.set(hex, []);
    return true;
  }

  /** Queues an entry's catalog row (its stamp, type, mode; no chunk list). */
  entry(e: CatalogEntry): void {
    this.seen.push(e);
    if (this.seen.length >= FILE_BATCH) this.flush();
  }

  /** A file read whole and unchanged: its chunk list is recorded once every chunk is stored. */
  fileRead(path: string, stamp: FileStamp, chunks: readonly ChunkRef[]): void {
    const w: Waiter = { path, stamp, chunks, remaining: 0 };
    for (const c of chunks) {
      const waiters = this.pending.get(Buffer.from(c.hash.buffer, c.hash.byteOffset, c.hash.byteLength).toString("hex"));
      if (waiters) {
        waiters.push(w);
        w.remaining++;
      }
    }
    if (w.remaining === 0) this.ready(w);
  }

  /** A file that must be read again next time: its row keeps no chunk list. */
  reread(path: string): void {
    this.rereads.push(path);
  }

  /** A blob is stored and recorded: its chunks stop being pending, and files waiting on them may be ready. */
  committed(blob: Pick<SealedBlob, "chunks">): void {
    for (const c of blob.chunks) {
      const waiters = this.pending.get(c.id);
      this.pending.delete(c.id);
      for (const w of waiters ?? []) if (--w.remaining === 0) this.ready(w);
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

  private ready(w: Waiter): void {
    this.readyFiles.push(w);
    if (this.readyFiles.length >= FILE_BATCH) this.flush();
  }
}
