import type { ChunkerParams } from "../chunk/fastcdc.js";

// One memory budget (config `memory_limit`, default 256 MiB) fixes how many pack workers run and
// what each may hold, whatever the core count, file count or file size. The figures are peak
// RSS measured here (bench/README.md "Memory (backup)"): a backup with its pack stage on the
// main thread peaks at ~176 MiB besides the stage's buffers, and each pack worker adds ~88 MiB
// (its isolate, chunking window, zstd contexts on libuv's pool, spool), so the default budget
// runs one worker, and 512 MiB runs three.

export const DEFAULT_MEMORY_LIMIT = 256 * 1024 * 1024;
const MiB = 1024 * 1024;

/** The main thread: node and its heap, the catalog's and the snapshot builder's SQLite caches. */
const BASE = 176 * MiB;
/** A worker thread's isolate and native state (zstd contexts, malloc arenas) besides the buffers below. */
const WORKER_BASE = 64 * MiB;
/** Raw bytes of new chunks waiting for zstd, per worker. */
const PACKING_BYTES = 4 * MiB;
/**
 * An in-memory blob spool; larger blobs spill their ciphertext to the work directory, from where
 * a directory store copies them in the kernel (copy_file_range): page cache, not process memory.
 */
const SPOOL_MEMORY_MAX = 4 * MiB;
/** Bytes of one claim-table slot (claims.ts). */
const CLAIM_SLOT = 16;
/**
 * Chunks claimed and not yet committed are what the table is for (once committed, the catalog
 * answers), so it need not hold a whole run: past 3/4 full it only stops deduplicating within
 * the run's uncommitted window.
 */
const CLAIM_SLOTS_MAX = 1 << 18;

export interface MemoryPlan {
  /** Pack worker threads (0: the pack stage runs on the main thread). */
  workers: number;
  /** Asked for more workers than the budget allows: how many were asked for. */
  cappedFrom?: number;
  packingBytes: number;
  /** Sealed blobs per worker waiting to be stored. */
  blobsInFlight: number;
  spoolMemory: number;
  claimSlots: number;
  /** Files handed to the workers and not yet answered, across all of them. */
  filesInFlight: number;
}

export interface PlanInput {
  memoryLimit: number;
  params: ChunkerParams;
  blobSizeLimit: number;
  /** Cores to use when `requested` is not given. */
  cores: number;
  /** VAULTIK_WORKERS, when set. */
  requested?: number;
}

export function planMemory(input: PlanInput): MemoryPlan {
  const spoolMemory = Math.min(input.blobSizeLimit, SPOOL_MEMORY_MAX);
  const blobsInFlight = 1;
  // The chunker's window and read buffer (chunker.ts newScratch), one open blob, one in flight.
  const scratch = input.params.max + Math.max(4 * MiB, 2 * input.params.max) + MiB;
  const perWorker = WORKER_BASE + scratch + PACKING_BYTES + spoolMemory * (1 + blobsInFlight);
  let claimSlots = CLAIM_SLOTS_MAX;
  while (claimSlots > 1024 && claimSlots * CLAIM_SLOT > input.memoryLimit / 16) claimSlots /= 2;
  const room = input.memoryLimit - BASE - claimSlots * CLAIM_SLOT;
  const fit = Math.max(1, Math.floor(room / perWorker));
  const wanted = input.requested ?? input.cores;
  const workers = wanted === 0 ? 0 : Math.min(wanted, fit);
  return {
    workers,
    cappedFrom: workers < wanted ? wanted : undefined,
    packingBytes: PACKING_BYTES,
    blobsInFlight,
    spoolMemory,
    claimSlots,
    filesInFlight: Math.max(1, workers) * 128,
  };
}
