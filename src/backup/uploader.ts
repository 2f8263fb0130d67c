import type { Catalog } from "../catalog/db.js";
import type { SealedBlob } from "../pack/writer.js";
import type { Repository } from "../repo/repository.js";
import { TaskPool } from "../util/pool.js";
import { crashPoint } from "../util/test-points.js";

// Uploads sealed blobs a few at a time and, only once a blob's put has succeeded, records it
// and its chunks in the catalog. That order is the crash-safety rule: the catalog never claims
// a chunk is stored before it is.

export interface UploaderOptions {
  repo: Repository;
  catalog: Catalog;
  concurrency: number;
  signal?: AbortSignal;
  /** Called after a blob is stored and recorded, with the hex ids of its chunks. */
  onCommitted(blob: SealedBlob, stored: boolean): void;
}

export class Uploader {
  private readonly pool: TaskPool;
  bytesUploaded = 0;
  blobsUploaded = 0;

  constructor(private readonly options: UploaderOptions) {
    this.pool = new TaskPool(options.concurrency);
  }

  /** Resolves once every blob has started uploading; waits while the pool is full (backpressure). */
  async enqueue(blobs: readonly SealedBlob[]): Promise<void> {
    for (const blob of blobs) {
      await this.pool.run(async () => {
        const { repo, catalog, signal } = this.options;
        const stored = await repo.storeBlob(blob, { signal });
        crashPoint("after-blob-put");
        if (stored) {
          this.bytesUploaded += blob.size;
          this.blobsUploaded++;
        }
        catalog.recordBlob({ name: blob.name, size: blob.size, headerLength: blob.headerLength }, blob.chunks);
        crashPoint("after-catalog-commit");
        this.options.onCommitted(blob, stored);
      });
    }
  }

  /**
   * Resolves when an upload slot is free. The packer waits for this before appending more, so
   * sealed blobs (each up to blob_size_limit, in memory) never pile up behind a slow store.
   */
  whenRoom(): Promise<void> {
    return this.pool.whenFree();
  }

  /** Waits for every upload; rethrows the first failure. */
  drain(): Promise<void> {
    return this.pool.drain();
  }
}
