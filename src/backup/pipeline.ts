import { createReadStream } from "node:fs";
import { rm } from "node:fs/promises";
import { Worker } from "node:worker_threads";
import type { Catalog } from "../catalog/db.js";
import type { ChunkerParams } from "../chunk/fastcdc.js";
import type { X25519Recipient } from "../crypto/keys.js";
import type { BlobName } from "../model/ids.js";
import type { SealedBlob } from "../pack/writer.js";
import type { Repository } from "../repo/repository.js";
import { Budget } from "../util/budget.js";
import { compiledWorker } from "../util/worker.js";
import type { CatalogCommits } from "./catalog-commits.js";
import { ChunkClaims } from "./claims.js";
import type { Regions } from "./chunker.js";
import type { MemoryPlan } from "./memory-plan.js";
import { PackStage, type FromStage, type StageInit, type ToStage } from "./pack-stage.js";
import { Uploader } from "./uploader.js";
import { decodeFileResults, decodeLocations, type FileResult } from "./wire.js";

// The main thread's side of the pack workers: hands them files and streams, and takes back
// sealed blobs (stored through the repository, then recorded in the catalog) and per-file
// results. The main thread does no per-byte work here: ciphertext arrives as a moved buffer
// and goes to the store as it is.

export interface PipelineOptions {
  repo: Repository;
  catalog: Catalog;
  commits: CatalogCommits;
  params: ChunkerParams;
  recipients: readonly X25519Recipient[];
  blobSizeLimit: number;
  workDir: string;
  plan: MemoryPlan;
  signal?: AbortSignal;
  /** Bytes the workers read since the last call (progress). */
  onProgress?: (bytes: number) => void;
}

/** A file's result and the worker lane it came from (its blob numbers are per lane). */
export type LaneResult = FileResult & { lane: number };

interface Lane {
  index: number;
  post(m: ToStage, transfer?: ArrayBuffer[]): void;
  outstanding: number;
  flushed?: () => void;
  close(): Promise<void>;
}

interface Task {
  resolve(r: LaneResult): void;
  reject(err: Error): void;
}

export class PackPipeline {
  private readonly lanes: Lane[] = [];
  private readonly tasks = new Map<number, Task>();
  /** Streams being fed, by task id: a piece was taken (several may share a worker). */
  private readonly took = new Map<number, () => void>();
  private nextId = 1;
  private readonly uploader: Uploader;
  private readonly inFlight: Budget;
  private failure: Error | undefined;
  private claims: ChunkClaims | undefined;

  constructor(private readonly o: PipelineOptions) {
    this.uploader = new Uploader({ repo: o.repo, catalog: o.catalog, signal: o.signal, onFailure: (err) => this.fail(err as Error) });
    this.inFlight = new Budget(o.plan.filesInFlight);
  }

  get bytesUploaded(): number {
    return this.uploader.bytesUploaded;
  }

  get blobsUploaded(): number {
    return this.uploader.blobsUploaded;
  }

  /** Rethrows the first failure of a worker or an upload. */
  throwIfFailed(): void {
    if (this.failure) throw this.failure;
    this.uploader.throwIfFailed();
  }

  /** Resolves once another file may be handed over (paces the walk). */
  async room(): Promise<void> {
    await this.inFlight.acquire(1);
    this.inFlight.release(1);
    this.throwIfFailed();
  }

  /** Reads, chunks and stores what is new of one file. `regions`: see chunker.ts chunkFile. */
  async file(abs: string, size: number, regions?: Regions): Promise<LaneResult> {
    const { lane, id, result } = await this.task();
    lane.post({ kind: "file", id, abs, size, regions });
    return result;
  }

  /** The same for a byte stream (a command's output); at most two pieces wait in the worker. */
  async stream(source: AsyncIterable<Uint8Array>): Promise<LaneResult> {
    const { lane, id, result } = await this.task();
    lane.post({ kind: "stream", id });
    let credit = 2;
    let wake: (() => void) | undefined;
    this.took.set(id, () => {
      credit++;
      wake?.();
    });
    const failed = result.then(() => undefined, () => undefined);
    try {
      for await (const piece of source) {
        while (credit === 0) {
          await Promise.race([new Promise<void>((r) => (wake = r)), failed]);
          this.throwIfFailed();
        }
        credit--;
        // A copy the worker owns: the source may reuse its buffer.
        const data = new Uint8Array(piece);
        lane.post({ kind: "data", id, data }, [data.buffer]);
      }
    } finally {
      lane.post({ kind: "end", id });
      this.took.delete(id);
    }
    return result;
  }

  /** Seals every worker's open blob and waits until every blob is stored and recorded. */
  async finish(): Promise<void> {
    this.throwIfFailed();
    await Promise.all(
      this.lanes.map(
        (lane) =>
          new Promise<void>((resolve) => {
            lane.flushed = resolve;
            lane.post({ kind: "flush" });
          }),
      ),
    );
    this.throwIfFailed();
    await this.uploader.drain();
    this.throwIfFailed();
  }

  /** Stops the workers; after a failure, waits for uploads in flight (they write the catalog). */
  async close(): Promise<void> {
    this.fail(new Error("backup stopped"));
    await Promise.all(this.lanes.splice(0).map((l) => l.close()));
    await this.uploader.drain().catch(() => {});
  }

  private async task(): Promise<{ lane: Lane; id: number; result: Promise<LaneResult> }> {
    await this.inFlight.acquire(1);
    try {
      this.throwIfFailed();
    } catch (err) {
      this.inFlight.release(1);
      throw err;
    }
    if (this.lanes.length === 0) this.start();
    const lane = this.lanes.reduce((a, b) => (b.outstanding < a.outstanding ? b : a));
    lane.outstanding++;
    const id = this.nextId++;
    const result = new Promise<LaneResult>((resolve, reject) => this.tasks.set(id, { resolve, reject })).finally(() => {
      lane.outstanding--;
      this.inFlight.release(1);
    });
    return { lane, id, result };
  }

  /** Starts the workers on first use: a run where nothing changed needs none. */
  private start(): void {
    const { plan } = this.o;
    this.claims = new ChunkClaims(plan.claimSlots);
    const init: StageInit = {
      catalogPath: this.o.catalog.path,
      params: this.o.params,
      recipients: this.o.recipients.map((r) => new Uint8Array(r.publicKey)),
      blobSizeLimit: this.o.blobSizeLimit,
      spool: { memoryLimit: plan.spoolMemory, dir: `${this.o.workDir}/spool` },
      claims: this.claims.buffer,
      packingBytes: plan.packingBytes,
      blobsInFlight: plan.blobsInFlight,
      sync: true,
    };
    const script = compiledWorker(import.meta.url, "./pack-worker.js");
    if (!script || plan.workers === 0) {
      this.lanes.push(this.inProcessLane(init));
      return;
    }
    for (let index = 0; index < plan.workers; index++) {
      const worker = new Worker(script, { workerData: init });
      const lane: Lane = {
        index,
        post: (m, transfer) => worker.postMessage(m, transfer),
        outstanding: 0,
        close: async () => void (await worker.terminate()),
      };
      worker.on("message", (m: FromStage) => this.onMessage(lane, m));
      worker.on("error", (err) => this.fail(err));
      worker.on("exit", (code) => {
        if (code !== 0) this.fail(new Error(`pack worker exited with code ${code}`));
      });
      this.lanes.push(lane);
    }
  }

  /** The same stage on this thread, with non-blocking reads (tests on the TypeScript sources). */
  private inProcessLane(init: StageInit): Lane {
    const lane: Lane = { index: 0, post: () => {}, outstanding: 0, close: async () => {} };
    const stage = new PackStage({ ...init, sync: false }, (m) => queueMicrotask(() => this.onMessage(lane, m)));
    lane.post = (m) => queueMicrotask(() => stage.receive(m));
    lane.close = () => stage.close();
    return lane;
  }

  private onMessage(lane: Lane, m: FromStage): void {
    switch (m.kind) {
      case "results":
        for (const r of decodeFileResults(m.data)) {
          const task = this.tasks.get(r.id);
          this.tasks.delete(r.id);
          task?.resolve({ ...r, lane: lane.index });
        }
        break;
      case "unreadable": {
        const task = this.tasks.get(m.id);
        this.tasks.delete(m.id);
        task?.reject(Object.assign(new Error(m.message), { code: m.code }));
        break;
      }
      case "blob":
        this.blob(lane, m);
        break;
      case "took":
        this.took.get(m.id)?.();
        break;
      case "progress":
        this.o.onProgress?.(m.bytes);
        break;
      case "flushed":
        lane.flushed?.();
        break;
      case "failed":
        this.fail(Object.assign(new Error(m.message), { code: m.code }));
        break;
    }
  }

  private blob(lane: Lane, m: Extract<FromStage, { kind: "blob" }>): void {
    this.o.commits.sealed(lane.index, m.seq, m.files);
    const name = m.name as BlobName;
    const { memory, path } = m;
    const sealed: SealedBlob = {
      name,
      size: m.size,
      headerLength: m.headerLength,
      sha256: Buffer.from(m.sha256),
      body: memory ? Buffer.from(memory.buffer, memory.byteOffset, m.size) : { size: m.size, file: path, open: () => createReadStream(path!, { highWaterMark: 1 << 20 }) },
      chunks: decodeLocations(m.chunks, name),
      dispose: async () => {
        if (path) await rm(path, { force: true });
      },
    };
    this.uploader.upload(sealed, () => {
      this.o.commits.committed(lane.index, m.seq, sealed.chunks);
      lane.post({ kind: "stored", seq: m.seq, memory }, memory ? [memory.buffer as ArrayBuffer] : undefined);
    });
  }

  private fail(err: Error): void {
    this.failure ??= err;
    for (const [id, task] of this.tasks) {
      this.tasks.delete(id);
      task.reject(err);
    }
    for (const lane of this.lanes) lane.flushed?.();
    for (const wake of this.took.values()) wake();
  }
}
