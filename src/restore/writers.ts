import { availableParallelism } from "node:os";
import { Worker } from "node:worker_threads";
import { compiledWorker, threadsFromEnv } from "../util/worker.js";
import { FileSink, type FrameWork, type SinkFailure, type SinkItem, type WriteOp } from "./sink.js";

// Hands a restore's frames to writer threads, which decompress them, check each chunk against
// its id and write it where it belongs: that is most of a restore's CPU time (kernel time for
// creating and filling files above all), and it overlaps the main thread's reading and
// decrypting of blobs. Work travels in batches: frame bytes are copied into a batch buffer that
// is transferred to a thread and comes back with its acknowledgement; at most BATCHES_PER_THREAD
// buffers per thread exist, which is the backpressure. No two writes overlap, and each file is
// finished either with its only write or by the restorer after all threads are done, so the
// order in which threads apply batches does not matter. The caller routes work by directory:
// two threads creating files in one directory contend for its lock, which cost 4.7 times the
// kernel time of one thread doing it (3.5 s against 0.74 s for the bench corpus).
//
// Where the compiled worker is not available (tests running the TypeScript sources) or no
// thread is wanted, the same FileSink runs on the main thread.

export interface WriterInit {
  owners: boolean;
}

export type ToWriter = { kind: "batch"; id: number; data: Uint8Array; items: SinkItem[] } | { kind: "close" };

export type FromWriter =
  | { kind: "done"; id: number; bytes: number; files: number; failed: SinkFailure[]; data: Uint8Array }
  | { kind: "closed" };

export interface WritersOptions {
  owners: boolean;
  /** Writer threads; 0 writes on the main thread. Default: VAULTIK_RESTORE_WRITERS, else the cores, at most 2. */
  threads?: number;
  /** Progress as threads acknowledge: bytes written and files finished. */
  onApplied(bytes: number, files: number): void;
  onFailed(failure: SinkFailure): void;
}

// Two threads keep up with one main thread reading and decrypting; each more costs ~60-80 MB of
// peak memory (an isolate, buffers, a malloc arena) for little: the file system is the limit.
const MAX_DEFAULT_THREADS = 2;
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
  closed?: () => void;
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

  constructor(private readonly o: WritersOptions) {
    const script = compiledWorker(import.meta.url, "./sink-worker.js");
    const threads = o.threads ?? threadsFromEnv("VAULTIK_RESTORE_WRITERS", Math.min(MAX_DEFAULT_THREADS, availableParallelism()));
    if (!script || threads === 0) {
      this.inline = new FileSink(o.owners);
      return;
    }
    this.allowance = threads * BATCHES_PER_THREAD;
    try {
      for (let i = 0; i < threads; i++) {
        const worker = new Worker(script, { workerData: { owners: o.owners } satisfies WriterInit });
        const slot: Slot = { worker, inFlight: 0, batch: undefined, exited: false };
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

  /** Sends what is batched, so threads do not wait for a batch to fill. */
  flush(): void {
    for (const slot of this.slots) if (slot.batch && slot.batch.items.length > 0) this.send(slot);
  }

  /** Sends everything and waits until every thread has applied it. */
  async drain(): Promise<void> {
    this.flush();
    while (this.sent.size > 0 && !this.failure) await new Promise<void>((r) => this.waiting.push(r));
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
      for (const f of await this.inline.applyBatch([item], data)) this.o.onFailed(f);
      this.o.onApplied(this.inline.bytes - bytes, this.inline.files - files);
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
    const sent = this.sent.get(m.id);
    this.sent.delete(m.id);
    slot.inFlight--;
    if (sent?.pooled) this.release(Buffer.from(m.data.buffer, 0, m.data.buffer.byteLength));
    this.o.onApplied(m.bytes, m.files);
    for (const f of m.failed) this.o.onFailed(f);
    // An ack frees an in-flight slot (oversized frames wait for that) and lets drain() go on.
    this.wake();
  }

  private wake(): void {
    const waiting = this.waiting;
    this.waiting = [];
    for (const w of waiting) w();
  }

  private fail(err: Error): void {
    this.failure ??= err;
    this.wake();
  }
}

/** A route for work in directory `dir`: the same directory, the same thread. */
export function routeOf(dir: string): number {
  // FNV-1a over UTF-16 code units: cheap, and spreads sibling directories.
  let h = 0x811c9dc5;
  for (let i = 0; i < dir.length; i++) h = Math.imul(h ^ dir.charCodeAt(i), 0x01000193);
  return h >>> 0;
}
