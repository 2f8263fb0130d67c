import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import type { FileStamp } from "../catalog/db.js";
import { compiledWorker, threadsFromEnv } from "../util/worker.js";
import type { ChunkerParams } from "../chunk/fastcdc.js";
import { chunkFile, type ChunkItem, type FileChunked, type Regions } from "./chunker.js";
import type { FromWorker, ToWorker, WorkerInit } from "./chunk-worker.js";

// Spreads file reading, chunking and hashing over worker threads, so they use a core of their
// own while the main thread walks, deduplicates, compresses (on libuv's pool), encrypts and
// uploads. Each worker takes several
// files at once. Results stream back per file in batches, each acknowledged before the next is
// produced (backpressure from the packer reaches the disk reads).
//
// Where the compiled worker is not available (tests running the TypeScript sources), files are
// chunked on the main thread by the same code.

export type OnItems = (items: ChunkItem[]) => Promise<void>;

export interface ChunkPoolOptions {
  catalogPath: string;
  params: ChunkerParams;
  /** For the main-thread fallback. */
  isStored(hash: Uint8Array): boolean;
  workers?: number;
  filesPerWorker?: number;
}

interface Task {
  resolve(r: FileChunked): void;
  reject(err: Error): void;
  onItems: OnItems;
  worker: Slot;
}

interface Slot {
  worker: Worker;
  busy: number;
}

export class ChunkPool {
  private readonly slots: Slot[] = [];
  private readonly tasks = new Map<number, Task>();
  private readonly waiting: (() => void)[] = [];
  private nextId = 1;
  private readonly perWorker: number;
  private failure: Error | undefined;
  private started = false;

  constructor(private readonly o: ChunkPoolOptions) {
    // Reads are blocking in the worker, so more files at once only overlap the wait for the
    // main thread's acknowledgements; each one costs a scratch set (~13 MiB).
    this.perWorker = o.filesPerWorker ?? 6;
  }

  /** Starts the workers on first use: a run where nothing changed needs none. */
  private start(): void {
    if (this.started) return;
    this.started = true;
    const o = this.o;
    const script = compiledWorker(import.meta.url, "./chunk-worker.js");
    if (!script) return;
    // One core stays with the main thread, which deduplicates, encrypts, hashes blobs and
    // writes SQLite; every worker also brings its own heap, so more is not free.
    const count = o.workers ?? threadsFromEnv("VAULTIK_WORKERS", Math.max(1, availableParallelism() - 1));
    if (count === 0) return;
    for (let i = 0; i < count; i++) {
      const worker = new Worker(script, { workerData: { catalogPath: o.catalogPath, params: o.params } satisfies WorkerInit });
      const slot: Slot = { worker, busy: 0 };
      worker.on("message", (m: FromWorker) => this.onMessage(slot, m));
      worker.on("error", (err) => this.fail(err));
      worker.on("exit", (code) => {
        if (code !== 0) this.fail(new Error(`chunk worker exited with code ${code}`));
      });
      this.slots.push(slot);
    }
  }

  get threaded(): boolean {
    return this.slots.length > 0;
  }

  /** Chunks one file; `onItems` receives its chunks in order. `regions`: see chunker.ts chunkFile. */
  async chunkFile(abs: string, size: number, onItems: OnItems, regions?: Regions): Promise<FileChunked> {
    this.start();
    if (!this.threaded) return chunkFile(abs, size, this.o.params, { isStored: this.o.isStored, emit: onItems }, false, undefined, regions);
    const slot = await this.slot();
    if (this.failure) throw this.failure;
    const id = this.nextId++;
    slot.busy++;
    return new Promise<FileChunked>((resolve, reject) => {
      this.tasks.set(id, { resolve, reject, onItems, worker: slot });
      slot.worker.postMessage({ kind: "file", id, abs, size, regions } satisfies ToWorker);
    }).finally(() => {
      slot.busy--;
      this.waiting.shift()?.();
    });
  }

  async close(): Promise<void> {
    const slots = this.slots.splice(0);
    await Promise.all(slots.map((s) => s.worker.terminate()));
  }

  private async slot(): Promise<Slot> {
    for (;;) {
      const free = this.slots.reduce((a, b) => (b.busy < a.busy ? b : a));
      if (free.busy < this.perWorker || this.failure) return free;
      await new Promise<void>((r) => this.waiting.push(r));
    }
  }

  private onMessage(slot: Slot, m: FromWorker): void {
    const task = this.tasks.get(m.id);
    if (!task) return;
    if (m.kind === "items") {
      task.onItems(m.items).then(
        () => slot.worker.postMessage({ kind: "ack", id: m.id } satisfies ToWorker),
        (err: unknown) => {
          this.tasks.delete(m.id);
          task.reject(err as Error);
          // Free the worker's side (its scratch buffers) instead of leaving it waiting.
          slot.worker.postMessage({ kind: "cancel", id: m.id } satisfies ToWorker);
        },
      );
    } else if (m.kind === "done") {
      this.tasks.delete(m.id);
      task.resolve({ size: m.size, stamp: m.stamp as FileStamp });
    } else {
      this.tasks.delete(m.id);
      task.reject(Object.assign(new Error(m.message), { code: m.code }));
    }
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const [id, task] of this.tasks) {
      this.tasks.delete(id);
      task.reject(err);
    }
    for (const w of this.waiting.splice(0)) w();
  }
}
