import { openChunkLookup } from "../catalog/chunk-lookup.js";
import { CHUNK_RECORD, writeChunkRecord } from "../catalog/codec.js";
import type { ChunkerParams } from "../chunk/fastcdc.js";
import { recipientFromBytes } from "../crypto/keys.js";
import { errorMessage } from "../errors.js";
import type { ChunkId } from "../model/ids.js";
import { giveBack } from "../pack/spool.js";
import { PackWriter, type SealedBlob } from "../pack/writer.js";
import { chunkFile, chunkSource, newScratch, type ChunkItem, type ChunkSink, type Regions, type Scratch } from "./chunker.js";
import { ChunkClaims } from "./claims.js";
import { Packer } from "./packer.js";
import { encodeFileResults, encodeLocations, type FileResult } from "./wire.js";

// One pack worker's whole job, for the byte sources the main thread hands it: read, cut into
// chunks, hash, decide what to store (the catalog for chunks stored before this run, the shared
// claim table for chunks of this run), compress, pack, encrypt and hash whole blobs. What comes
// back to the main thread is a sealed blob (its ciphertext moved, not copied, to be put in the
// store through the repository) and per-file results in binary batches (wire.ts), never a
// message per chunk. The same class runs on the main thread when no worker script is built
// (tests on the TypeScript sources): one code path either way.
//
// The crash-safety rule travels with the results: the main thread records a file's chunk list
// in the catalog only once every chunk it references is stored. A chunk this worker stores for
// the file sits in one of its numbered blobs; a result says which (FileResult.needSeq), or that
// a later blob message will name the file. A chunk another file claimed first is listed so the
// main thread waits for whichever blob holds it.

export interface StageInit {
  catalogPath: string;
  params: ChunkerParams;
  /** Raw X25519 public keys every blob is sealed to. */
  recipients: Uint8Array[];
  blobSizeLimit: number;
  spool: { memoryLimit: number; dir: string };
  claims: SharedArrayBuffer;
  /** Raw bytes of new chunks waiting for zstd before reading pauses. */
  packingBytes: number;
  /** Sealed blobs handed to the main thread and not yet stored, before packing pauses. */
  blobsInFlight: number;
  /** Blocking reads: right in a worker thread, whose only job this is; never on the main thread. */
  sync: boolean;
}

export type ToStage =
  /** `regions`: a file with holes, read there only (chunker.ts). */
  | { kind: "file"; id: number; abs: string; size: number; regions?: Regions }
  /** A byte stream (command output) whose pieces follow as `data`, ended by `end`. */
  | { kind: "stream"; id: number }
  | { kind: "data"; id: number; data: Uint8Array }
  | { kind: "end"; id: number }
  /** Blob `seq` is in the store; `memory` is its buffer, back for reuse. */
  | { kind: "stored"; seq: number; memory?: Uint8Array }
  /** No more sources: seal what is open and answer `flushed`. */
  | { kind: "flush" };

export type FromStage =
  | {
      kind: "blob";
      seq: number;
      name: string;
      size: number;
      headerLength: number;
      sha256: Uint8Array;
      /** The ciphertext is the first `size` bytes of `memory`, or the file at `path`. */
      memory?: Uint8Array;
      path?: string;
      /** wire.ts encodeLocations. */
      chunks: Uint8Array;
      /** Files (task ids) whose last unsealed chunks are in this blob. */
      files: number[];
    }
  | { kind: "results"; data: Uint8Array }
  | { kind: "unreadable"; id: number; message: string; code?: string }
  /** A stream piece was taken: the main thread may send another. */
  | { kind: "took"; id: number }
  | { kind: "progress"; bytes: number }
  | { kind: "flushed" }
  /** The stage itself failed (zstd, the spool's disk): the run cannot go on. */
  | { kind: "failed"; message: string; code?: string };

export type Post = (m: FromStage, transfer?: ArrayBuffer[]) => void;

/** A file being read or waiting for its stored chunks to be sealed. */
interface Pending {
  result: FileResult;
  /** Chunks this worker stores for it that no sealed blob holds yet. */
  unsealed: number;
  /** The newest of this worker's blobs holding one of them. */
  maxSeq: number;
  /** Its result is sent; a blob message must name it once `unsealed` reaches 0. */
  sent: boolean;
  dead: boolean;
}

/** Results are sent once this many wait, or when the stage runs out of work. */
const RESULT_BATCH = 64;
const PROGRESS_BYTES = 16 << 20;

export class PackStage {
  private readonly queue: Extract<ToStage, { kind: "file" | "stream" }>[] = [];
  private running = false;
  private flushing = false;
  private readonly lookup: ReturnType<typeof openChunkLookup>;
  private readonly claims: ChunkClaims;
  private readonly packer: Packer;
  private readonly scratch: Scratch;
  private seq = 0;
  private inFlight = 0;
  private readonly roomWaiters: (() => void)[] = [];
  private results: FileResult[] = [];
  /** This worker's stored chunks not sealed yet, by id, and the files that wait for them. */
  private readonly unsealed = new Map<string, Pending[]>();
  private readonly streams = new Map<number, StreamQueue>();
  private progress = 0;
  private stopped = false;

  constructor(private readonly init: StageInit, private readonly post: Post) {
    this.lookup = openChunkLookup(init.catalogPath);
    this.claims = new ChunkClaims(init.claims);
    const writer = new PackWriter({
      recipients: init.recipients.map((r) => recipientFromBytes(r)),
      blobSizeLimit: init.blobSizeLimit,
      spool: init.spool,
    });
    this.packer = new Packer(writer, (sealed) => this.sealed(sealed), init.packingBytes);
    this.scratch = newScratch(init.params);
  }

  receive(m: ToStage): void {
    if (this.stopped) return;
    switch (m.kind) {
      case "file":
      case "stream":
        if (m.kind === "stream") this.streams.set(m.id, new StreamQueue());
        this.queue.push(m);
        void this.pump();
        break;
      case "data":
        this.streams.get(m.id)?.push(m.data);
        break;
      case "end":
        this.streams.get(m.id)?.end();
        break;
      case "stored":
        if (m.memory) giveBack(Buffer.from(m.memory.buffer, m.memory.byteOffset, m.memory.byteLength));
        this.inFlight--;
        // Every waiter checks again: each packed chunk waits here while blobs are unstored.
        for (const w of this.roomWaiters.splice(0)) w();
        break;
      case "flush":
        this.flushing = true;
        void this.pump();
        break;
    }
  }

  /** Stops taking work (the run failed) and drops what is packed but not sealed. */
  async close(): Promise<void> {
    this.stopped = true;
    for (const w of this.roomWaiters.splice(0)) w();
    await this.packer.abort().catch(() => {});
    this.lookup.close();
  }

  private async pump(): Promise<void> {
    if (this.running) return;
    this.running = true;
    try {
      for (let task = this.queue.shift(); task && !this.stopped; task = this.queue.shift()) {
        await this.source(task);
        if (this.queue.length === 0) this.sendResults();
      }
      if (this.flushing && !this.stopped) {
        this.flushing = false;
        await this.packer.finish();
        this.sendResults();
        this.post({ kind: "flushed" });
      }
    } catch (err) {
      this.fail(err);
    } finally {
      this.running = false;
    }
  }

  private fail(err: unknown): void {
    if (this.stopped) return;
    this.stopped = true;
    const code = (err as { code?: unknown } | null)?.code;
    this.post({ kind: "failed", message: errorMessage(err), code: typeof code === "string" ? code : undefined });
  }

  /** Reads one source to its end; a file that cannot be read is reported, anything else rethrown. */
  private async source(task: Extract<ToStage, { kind: "file" | "stream" }>): Promise<void> {
    const pending: Pending = {
      result: { id: task.id, size: 0, bytesNew: 0, bytesRead: 0, stamp: NO_STAMP, chunks: Buffer.alloc(0), others: [], needSeq: 0 },
      unsealed: 0,
      maxSeq: 0,
      sent: false,
      dead: false,
    };
    const list = new ChunkList();
    const sink: ChunkSink = {
      isStored: (hash) => this.lookup.has(hash),
      emit: (items) => this.take(items, pending, list),
    };
    try {
      if (task.kind === "file") {
        const done = await chunkFile(task.abs, task.size, this.init.params, sink, this.init.sync, this.scratch, task.regions);
        pending.result.size = done.size;
        pending.result.stamp = done.stamp;
      } else {
        const queue = this.streams.get(task.id)!;
        queue.onTake = () => this.post({ kind: "took", id: task.id });
        pending.result.size = await chunkSource(queue, this.init.params, sink, this.scratch.work);
        this.streams.delete(task.id);
      }
    } catch (err) {
      pending.dead = true;
      this.packer.throwIfFailed();
      if (!isFileError(err)) throw err;
      this.post({ kind: "unreadable", id: task.id, message: errorMessage(err), code: (err as { code?: string }).code });
      return;
    }
    pending.result.chunks = list.done();
    pending.result.needSeq = pending.unsealed > 0 ? -1 : pending.maxSeq;
    pending.sent = true;
    this.results.push(pending.result);
    if (this.results.length >= RESULT_BATCH) this.sendResults();
  }

  /** A batch of a source's chunks, in order: recorded, and the ones to store handed to the packer. */
  private async take(items: ChunkItem[], pending: Pending, list: ChunkList): Promise<void> {
    if (this.stopped) throw new Error("pack stage stopped");
    const r = pending.result;
    for (const item of items) {
      const index = list.add(item.hash, item.offset, item.rawLength);
      this.progress += item.rawLength;
      r.bytesRead += item.rawLength;
      if (!item.data) continue;
      if (this.claims.claim(item.hash) === "new") {
        const hex = Buffer.from(item.hash.buffer, item.hash.byteOffset, item.hash.byteLength).toString("hex");
        r.bytesNew += item.rawLength;
        this.wait(hex, pending);
        this.packer.add(item.data, hex as ChunkId);
        continue;
      }
      // Claimed before: by this worker and not sealed yet (wait for it here), else by another
      // file whose blob the main thread will see.
      const hex = Buffer.from(item.hash.buffer, item.hash.byteOffset, item.hash.byteLength).toString("hex");
      if (this.unsealed.has(hex)) this.wait(hex, pending);
      else r.others.push(index);
    }
    if (this.progress >= PROGRESS_BYTES) {
      this.post({ kind: "progress", bytes: this.progress });
      this.progress = 0;
    }
    await this.packer.room();
  }

  private wait(hex: string, pending: Pending): void {
    const waiting = this.unsealed.get(hex);
    if (waiting) {
      if (waiting.includes(pending)) return;
      waiting.push(pending);
    } else this.unsealed.set(hex, [pending]);
    pending.unsealed++;
  }

  /** The packer sealed blobs: each goes to the main thread with the files it completes. */
  private async sealed(blobs: readonly SealedBlob[]): Promise<void> {
    for (const blob of blobs) {
      const seq = ++this.seq;
      const files: number[] = [];
      for (const c of blob.chunks) {
        const waiting = this.unsealed.get(c.id);
        if (!waiting) continue;
        this.unsealed.delete(c.id);
        for (const p of waiting) {
          p.maxSeq = seq;
          if (--p.unsealed === 0 && p.sent && !p.dead) files.push(p.result.id);
        }
      }
      // Results first: the main thread must know a file before a blob names it.
      this.sendResults();
      const held = blob.held ?? { path: undefined };
      const memory = "memory" in held ? held.memory : undefined;
      const m: FromStage = {
        kind: "blob",
        seq,
        name: blob.name,
        size: blob.size,
        headerLength: blob.headerLength,
        sha256: blob.sha256,
        memory,
        path: "path" in held ? held.path : undefined,
        chunks: encodeLocations(blob.chunks),
        files,
      };
      this.inFlight++;
      this.post(m, memory ? [memory.buffer as ArrayBuffer] : undefined);
    }
    while (this.inFlight >= this.init.blobsInFlight && !this.stopped) await new Promise<void>((r) => this.roomWaiters.push(r));
  }

  private sendResults(): void {
    if (this.results.length === 0) return;
    const data = encodeFileResults(this.results);
    this.results = [];
    this.post({ kind: "results", data }, [data.buffer as ArrayBuffer]);
  }
}

const NO_STAMP = { size: 0n, mtimeNs: 0n, ctimeNs: 0n, inode: 0n, dev: 0n };

/** A file's chunk records (catalog/codec.ts packChunks' layout), grown as chunks come. */
class ChunkList {
  private buf = Buffer.allocUnsafe(16 * CHUNK_RECORD);
  private at = 0;

  /** Appends a record; returns its index. */
  add(hash: Uint8Array, offset: number, length: number): number {
    if (this.at + CHUNK_RECORD > this.buf.length) {
      const bigger = Buffer.allocUnsafe(this.buf.length * 2);
      this.buf.copy(bigger, 0, 0, this.at);
      this.buf = bigger;
    }
    this.at = writeChunkRecord(this.buf, this.at, hash, offset, length);
    return this.at / CHUNK_RECORD - 1;
  }

  /** The records, in a buffer of their own (it moves to the main thread). */
  done(): Buffer {
    return Buffer.from(this.buf.subarray(0, this.at));
  }
}

/** Stream pieces from the main thread, read as an async iterable. */
class StreamQueue implements AsyncIterable<Uint8Array> {
  private readonly pieces: Uint8Array[] = [];
  private ended = false;
  private wake: (() => void) | undefined;
  onTake: (() => void) | undefined;

  push(data: Uint8Array): void {
    this.pieces.push(data);
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Uint8Array> {
    for (;;) {
      const piece = this.pieces.shift();
      if (piece) {
        this.onTake?.();
        yield piece;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((r) => (this.wake = r));
      this.wake = undefined;
    }
  }
}

/** A failure of the file itself (errno from the kernel), as opposed to one of the run. */
export function isFileError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" && /^E[A-Z0-9]+$/.test(code);
}
