import { Worker } from "node:worker_threads";
import type { SealedSink, SealedStart } from "../pack/reader.js";
import { compiledWorker, threadsFromEnv } from "../util/worker.js";
import { BlobJob, type BlobJobEnd, type BlobJobStart } from "./blob-job.js";
import { restoreBudget, type RestoreBudget } from "./budget.js";
import { newDirLocks } from "./dir-locks.js";
import { FileSink, type FrameWork, type SinkFailure, type SinkItem, type WriteOp } from "./sink.js";

// Hands a restore's blobs to writer threads, which decrypt them, cut out the wanted frames,
// decompress them, check each chunk against its id and write it where it belongs (BlobJob): all
// the per-byte work, so the main thread only reads blobs and plans. A blob's bytes go to one
// thread as read, by transfer (no copy); the ciphertext not yet processed is bounded by the
// budget's bytesInFlight, which is the backpressure. Frames the main thread has already
// decrypted (ranged reads) and empty files travel in batches: copied into a batch buffer that is
// transferred to a thread and comes back with its acknowledgement. No two writes overlap, and each file is
// finished either with its only write or by the restorer after all threads are done, so the
// order in which threads apply batches does not matter. The caller routes work by directory:
// two threads creating files in one directory contend for its lock, which cost 4.7 times the
// kernel time of one thread doing it (3.5 s against 0.74 s for the bench corpus).
//
// Where the compiled worker is not available (tests running the TypeScript sources) or no
// thread is wanted, the same FileSink runs on the main thread.

export interface WriterInit {
  owners: boolean;
  /** Shared by all threads: see dir-locks.ts. */
  locks: Int32Array;
}

export type ToWriter =
  | { kind: "batch"; id: number; data: Uint8Array; items: SinkItem[] }
  | { kind: "blob"; job: number; start: BlobJobStart }
  | { kind: "sealed"; job: number; data: Uint8Array }
  | { kind: "blobEnd"; job: number; aborted: boolean }
  | { kind: "close" };

/** What a thread has written since its last message. */
export interface Applied {
  bytes: number;
  files: number;
  failed: SinkFailure[];
}

export type FromWriter =
  | ({ kind: "done"; id: number; data: Uint8Array } & Applied)
  | ({ kind: "sealed"; job: number; consumed: number } & Applied)
  | ({ kind: "blobEnd"; job: number; end: BlobJobEnd } & Applied)
  | { kind: "closed" };

/** A blob on its way to a writer thread (see Writers.streamBlob). */
export interface BlobStream extends SealedSink {
  /** The blob's read has ended (`aborted`: it failed); resolves with how far its frames got. */
  end(aborted: boolean): Promise<BlobJobEnd>;
}

export interface WritersOptions {
  owners: boolean;
  /** Writer threads; 0 writes on the main thread. Default: VAULTIK_RESTORE_WRITERS, else the budget's. */
  threads?: number;
  /** Default: restoreBudget() (256 MiB). */
  budget?: RestoreBudget;
  /** Progress as threads acknowledge: bytes written and files finished. */
  onApplied(bytes: number, files: number): void;
  onFailed(failure: SinkFailure): void;
}

const BATCH_BYTES = 4 << 20;
const BATCH_ITEMS = 1024;
const BATCHES_PER_THREAD = 3;

interface Batch {
  data: Buffer;
  used: number;
  items: SinkItem[];
}

interface Slot {
  worker: Worker;
  inFlight: number;
  batch: Batch | undefined;
  exited: boolean;
  /** Blob bytes sent to it and not yet processed. */
  sealed: number;
  closed?: () => void;
}

interface Job {
  slot: Slot;
  done: (end: BlobJobEnd) => void;
  failed: (err: Error) => void;
}

export class Writers {
  private readonly slots: Slot[] = [];
  private readonly inline: FileSink | undefined;
  /** Batch-sized buffers back from the threads, and how many more may be made. */
  private readonly free: Buffer[] = [];
  private allowance = 0;
  private readonly sent = new Map<number, { slot: Slot; pooled: boolean }>();
  private waiting: (() => void)[] = [];
  private failure: Error | undefined;
  private closing = false;
  private nextId = 1;
  private readonly budget: RestoreBudget;
  /** Blob bytes sent to threads and not yet processed, in all. */
  private sealed = 0;
  private readonly jobs = new Map<number, Job>();

  /** Writer threads started (0: writes on the main thread). */
  readonly threads: number = 0;

  constructor(private readonly o: WritersOptions) {
    const script = compiledWorker(import.meta.url, "./sink-worker.js");
    this.budget = o.budget ?? restoreBudget();
    const threads = o.threads ?? threadsFromEnv("VAULTIK_RESTORE_WRITERS", this.budget.writers);
    if (!script || threads === 0) {
      this.inline = new FileSink(o.owners);
      return;
    }
    this.threads = threads;
    this.allowance = Math.max(threads, Math.floor(this.budget.bytesInFlight / BATCH_BYTES));
    const locks = newDirLocks();
    try {
      for (let i = 0; i < threads; i++) {
        const worker = new Worker(script, { workerData: { owners: o.owners, locks } satisfies WriterInit });
        const slot: Slot = { worker, inFlight: 0, batch: undefined, exited: false, sealed: 0 };
        worker.on("message", (m: FromWriter) => this.onMessage(slot, m));
        worker.on("error", (err) => this.fail(err));
        worker.on("exit", (code) => {
          slot.exited = true;
          slot.closed?.();
          if (!this.closing) this.fail(new Error(`restore writer thread exited with code ${code}`));
        });
        this.slots.push(slot);
      }
    } catch (err) {
      for (const slot of this.slots) void slot.worker.terminate();
      throw err;
    }
  }

  /** A thread died: nothing more can be written. */
  get failed(): boolean {
    return this.failure !== undefined;
  }

  /**
   * Queues a compressed frame and where each of its chunks goes. Work with the same `route`
   * goes to the same thread (see routeOf).
   */
  writeFrame(frame: Uint8Array, object: string, work: FrameWork, route: number): Promise<void> {
    return this.add({ kind: "frame", start: 0, length: frame.length, object, work }, frame, route);
  }

  /** Queues bytes to write as they are (an empty file: no bytes, only its metadata). */
  writeRaw(target: WriteOp, data: Uint8Array, route: number): Promise<void> {
    return this.add({ kind: "raw", start: 0, length: data.length, target }, data, route);
  }

  /**
   * A blob whose bytes go to one thread as they are read, for it to decrypt, cut into `job`'s
   * frames and write them. The thread is the one with the fewest bytes waiting, the one of
   * `route` among equals.
   */
  streamBlob(job: Omit<BlobJobStart, keyof SealedStart>, route: number): BlobStream {
    if (this.inline) return this.inlineBlob(job);
    const id = this.nextId++;
    let slot: Slot | undefined;
    let ended: Promise<BlobJobEnd> | undefined;
    return {
      start: (opened) => {
        slot = this.slots[route % this.slots.length]!;
        // Balance before locality: the directory locks keep threads that meet in a directory from spinning.
        for (const other of this.slots) if (other.sealed < slot.sealed) slot = other;
        const start: BlobJobStart = { ...job, payloadKey: opened.payloadKey, payloadOffset: opened.payloadOffset };
        const s = slot;
        ended = new Promise<BlobJobEnd>((done, failed) => this.jobs.set(id, { slot: s, done, failed }));
        ended.catch(() => undefined);
        slot.worker.postMessage({ kind: "blob", job: id, start } satisfies ToWriter);
      },
      push: async (part) => {
        while (this.sealed > 0 && this.sealed + part.length > this.budget.bytesInFlight && !this.failure) {
          await new Promise<void>((r) => this.waiting.push(r));
        }
        if (this.failure) throw this.failure;
        // Bytes that are a whole buffer of their own (a file read's) move to the thread; a view
        // into shared memory (a pool slice) is copied, since moving it would take the rest too.
        const own = part.byteOffset === 0 && part.byteLength === part.buffer.byteLength;
        const data = own ? new Uint8Array(part.buffer, 0, part.byteLength) : new Uint8Array(part);
        this.sealed += data.length;
        slot!.sealed += data.length;
        slot!.worker.postMessage({ kind: "sealed", job: id, data } satisfies ToWriter, [data.buffer as ArrayBuffer]);
      },
      end: async (aborted) => {
        if (!ended) return { upTo: -1 };
        if (this.failure) throw this.failure;
        slot!.worker.postMessage({ kind: "blobEnd", job: id, aborted } satisfies ToWriter);
        return ended;
      },
    };
  }

  /** streamBlob without threads: the same BlobJob on the main thread. */
  private inlineBlob(job: Omit<BlobJobStart, keyof SealedStart>): BlobStream {
    const sink = this.inline!;
    let blob: BlobJob | undefined;
    const report = async (step: (failed: SinkFailure[]) => Promise<BlobJobEnd | void>) => {
      const [bytes, files] = [sink.bytes, sink.files];
      const failed: SinkFailure[] = [];
      const end = await step(failed);
      this.applied({ bytes: sink.bytes - bytes, files: sink.files - files, failed });
      return end;
    };
    return {
      start: (opened) => void (blob = new BlobJob(sink, { ...job, ...opened })),
      push: async (part) => void (await report((failed) => blob!.push(part, failed))),
      end: async (aborted) => (blob ? ((await report((failed) => blob!.end(aborted, failed))) as BlobJobEnd) : { upTo: -1 }),
    };
  }

  /** Sends what is batched, so threads do not wait for a batch to fill. */
  flush(): void {
    for (const slot of this.slots) if (slot.batch && slot.batch.items.length > 0) this.send(slot);
  }

  /** Sends everything and waits until every thread has applied it. */
  async drain(): Promise<void> {
    this.flush();
    while ((this.sent.size > 0 || this.jobs.size > 0) && !this.failure) await new Promise<void>((r) => this.waiting.push(r));
    if (this.failure) throw this.failure;
  }

  /**
   * Closes the threads' descriptors and stops them, also after a failure: descriptors a thread
   * opened stay open in the process when the thread is only terminated.
   */
  async close(): Promise<void> {
    this.closing = true;
    this.inline?.closeAll();
    await Promise.all(
      this.slots.map(async (slot) => {
        if (!slot.exited) {
          // A thread still busy with a batch closes after it (its queue is in order).
          await new Promise<void>((resolve) => {
            slot.closed = resolve;
            slot.worker.postMessage({ kind: "close" } satisfies ToWriter);
          });
        }
        await slot.worker.terminate();
      }),
    );
    this.slots.length = 0;
  }

  private async add(item: SinkItem, data: Uint8Array, route: number): Promise<void> {
    if (this.failure) throw this.failure;
    if (this.inline) {
      const [bytes, files] = [this.inline.bytes, this.inline.files];
      const failed = await this.inline.applyBatch([item], data);
      this.applied({ bytes: this.inline.bytes - bytes, files: this.inline.files - files, failed });
      return;
    }
    let slot = this.slots[route % this.slots.length]!;
    // Locality yields to balance: a thread with all its batches out does not hold up work while
    // another waits for some.
    if (!slot.batch && slot.inFlight >= BATCHES_PER_THREAD) {
      const idle = this.slots.find((s) => s.inFlight === 0 && !s.batch);
      if (idle) slot = idle;
    }
    for (;;) {
      const b = slot.batch;
      if (b && b.used + data.length <= b.data.length && b.items.length < BATCH_ITEMS) {
        b.data.set(data, b.used);
        b.items.push({ ...item, start: b.used });
        b.used += data.length;
        return;
      }
      if (b) this.send(slot);
      const buffer = await this.buffer(data.length);
      // Another write may have started a batch while this one waited.
      if (slot.batch) this.release(buffer);
      else slot.batch = { data: buffer, used: 0, items: [] };
    }
  }

  private async buffer(need: number): Promise<Buffer> {
    for (;;) {
      if (this.failure) throw this.failure;
      if (need > BATCH_BYTES) {
        // An oversized frame travels in a buffer of its own, which is not kept.
        if (this.sent.size < this.slots.length * BATCHES_PER_THREAD) return Buffer.allocUnsafeSlow(need);
      } else {
        const reused = this.free.pop();
        if (reused) return reused;
        if (this.allowance > 0) {
          this.allowance--;
          return Buffer.allocUnsafeSlow(BATCH_BYTES);
        }
      }
      await new Promise<void>((r) => this.waiting.push(r));
    }
  }

  /** Keeps a batch-sized buffer for the next batch; an oversized one goes to the collector. */
  private release(buffer: Buffer): void {
    if (buffer.length === BATCH_BYTES) {
      this.free.push(buffer);
      this.wake();
    }
  }

  private send(slot: Slot): void {
    const b = slot.batch!;
    slot.batch = undefined;
    const id = this.nextId++;
    slot.inFlight++;
    this.sent.set(id, { slot, pooled: b.data.length === BATCH_BYTES });
    const data = new Uint8Array(b.data.buffer, 0, b.data.length);
    slot.worker.postMessage({ kind: "batch", id, data, items: b.items } satisfies ToWriter, [data.buffer as ArrayBuffer]);
  }

  private onMessage(slot: Slot, m: FromWriter): void {
    if (m.kind === "closed") {
      slot.closed?.();
      return;
    }
    this.applied(m);
    if (m.kind === "sealed") {
      this.sealed -= m.consumed;
      slot.sealed -= m.consumed;
      this.wake();
      return;
    }
    if (m.kind === "blobEnd") {
      const job = this.jobs.get(m.job);
      this.jobs.delete(m.job);
      job?.done(m.end);
      this.wake();
      return;
    }
    const sent = this.sent.get(m.id);
    this.sent.delete(m.id);
    slot.inFlight--;
    if (sent?.pooled) this.release(Buffer.from(m.data.buffer, 0, m.data.buffer.byteLength));
    // An ack frees an in-flight slot (oversized frames wait for that) and lets drain() go on.
    this.wake();
  }

  private applied(a: Applied): void {
    this.o.onApplied(a.bytes, a.files);
    for (const f of a.failed) this.o.onFailed(f);
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) w();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const job of this.jobs.values()) job.failed(this.failure);
    this.jobs.clear();
    this.wake();
  }
}

/** A route for work in directory `dir`: the same directory, the same thread. */
export { routeOf } from "./dir-locks.js";
