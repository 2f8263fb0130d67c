import type { Catalog } from "../catalog/db.js";
import type { SealedBlob } from "../pack/writer.js";
import type { Repository } from "../repo/repository.js";
import { crashPoint } from "../util/test-points.js";

// Stores sealed blobs and, only once a blob's put has succeeded, records it and its chunks in
// the catalog. That order is the crash-safety rule: the catalog never claims a chunk is stored
// before it is. How many blobs are in flight is the pack workers' bound (pack-stage.ts), not
// this one's: each worker waits for its blobs to be stored before it seals more.

export interface UploaderOptions {
  repo: Repository;
  catalog: Pick<Catalog, "recordBlob">;
  signal?: AbortSignal;
  /** Called with the first failure (the workers wait for blobs to be stored: they must stop). */
  onFailure?: (error: unknown) => void;
}

export class Uploader {
  private readonly running = new Set<Promise<void>>();
  private failure: { error: unknown } | undefined;
  bytesUploaded = 0;
  blobsUploaded = 0;

  constructor(private readonly options: UploaderOptions) {}

  /** Stores and records `blob` in the background, then calls `committed`; a failure surfaces at the next check. */
  upload(blob: SealedBlob, committed: (stored: boolean) => void): void {
    const { repo, catalog, signal } = this.options;
    const p: Promise<void> = (async () => {
      const stored = await repo.storeBlob(blob, { signal });
      crashPoint("after-blob-put");
      if (stored) {
        this.bytesUploaded += blob.size;
        this.blobsUploaded++;
      }
      catalog.recordBlob({ name: blob.name, size: blob.size, headerLength: blob.headerLength }, blob.chunks);
      crashPoint("after-catalog-commit");
      committed(stored);
    })()
      .catch((error: unknown) => {
        if (this.failure) return;
        this.failure = { error };
        this.options.onFailure?.(error);
      })
      .finally(() => this.running.delete(p));
    this.running.add(p);
  }

  throwIfFailed(): void {
    if (this.failure) throw this.failure.error;
  }

  /** Waits for every upload; rethrows the first failure. */
  async drain(): Promise<void> {
    while (this.running.size > 0) await Promise.all(this.running);
    this.throwIfFailed();
  }
}
