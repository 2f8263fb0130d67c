import { parentPort, workerData } from "node:worker_threads";
import { openChunkLookup } from "../catalog/chunk-lookup.js";
import type { ChunkerParams } from "../chunk/fastcdc.js";
import { chunkFile, newScratch, type ChunkItem, type Regions, type Scratch } from "./chunker.js";

// A worker thread of the chunk pool: reads, chunks and hashes the files the main thread hands
// it. It asks its own read-only connection to the catalog which chunks are stored, so the bytes
// of stored chunks never cross to the main thread. That plain lookup is enough: before the pool
// starts, the archiver has dropped every blob sealed to other recipients (Catalog.useRecipients),
// so a chunk found here is one this run may reference. Messages: see chunk-pool.ts.

export interface WorkerInit {
  catalogPath: string;
  params: ChunkerParams;
}

export type ToWorker =
  /** `regions`: a file with holes, read there only (chunker.ts). */
  | { kind: "file"; id: number; abs: string; size: number; regions?: Regions }
  | { kind: "ack"; id: number }
  /** The main thread gave up on this file: stop it. */
  | { kind: "cancel"; id: number };

export type FromWorker =
  | { kind: "items"; id: number; items: ChunkItem[] }
  | { kind: "done"; id: number; size: number; stamp: { size: bigint; mtimeNs: bigint; ctimeNs: bigint; inode: bigint; dev: bigint } }
  | { kind: "error"; id: number; message: string; code?: string };

const init = workerData as WorkerInit;
const port = parentPort!;
const stored = openChunkLookup(init.catalogPath);
const acks = new Map<number, { resolve: () => void; reject: (err: Error) => void }>();
// One scratch set per file being chunked, kept for the next file (see chunkStream's scratch).
const scratches: Scratch[] = [];

port.on("message", (msg: ToWorker) => {
  if (msg.kind === "ack" || msg.kind === "cancel") {
    const waiting = acks.get(msg.id);
    acks.delete(msg.id);
    if (msg.kind === "ack") waiting?.resolve();
    else waiting?.reject(new Error("cancelled"));
    return;
  }
  void run(msg);
});

async function run(task: Extract<ToWorker, { kind: "file" }>): Promise<void> {
  const scratch = scratches.pop() ?? newScratch(init.params);
  try {
    const result = await chunkFile(task.abs, task.size, init.params, {
      isStored: stored.has,
      emit: (items) =>
        new Promise<void>((resolve, reject) => {
          acks.set(task.id, { resolve, reject });
          port.postMessage({ kind: "items", id: task.id, items } satisfies FromWorker, transferable(items));
        }),
    }, true, scratch, task.regions);
    acks.delete(task.id);
    port.postMessage({ kind: "done", id: task.id, size: result.size, stamp: result.stamp } satisfies FromWorker);
  } catch (err) {
    acks.delete(task.id);
    const e = err as NodeJS.ErrnoException;
    port.postMessage({ kind: "error", id: task.id, message: e.message ?? String(err), code: e.code } satisfies FromWorker);
  } finally {
    scratches.push(scratch);
  }
}

/**
 * Chunks that own their whole ArrayBuffer move to the main thread without a copy. Others may
 * share theirs with unrelated buffers (Node pools small allocations): those are copied, since
 * transferring would detach the neighbours too.
 */
function transferable(items: readonly ChunkItem[]): ArrayBuffer[] {
  const out = new Set<ArrayBuffer>();
  for (const { data } of items) {
    if (data && data.byteOffset === 0 && data.buffer.byteLength === data.byteLength && data.buffer instanceof ArrayBuffer) {
      out.add(data.buffer);
    }
  }
  return [...out];
}
