import type { ChunkerParams } from "../chunk/fastcdc.js";

// One memory budget (config `memory_limit`, default 256 MiB) fixes how many pack workers run and
// what each may hold, whatever the core count, file count or file size. Figures are what each
// part measured at its peak here (bench/README.md "Memory (backup)"), rounded up.

export const DEFAULT_MEMORY_LIMIT = 256 * 1024 * 1024;
const MiB = 1024 * 1024;

/** The main thread: node and its heap, the catalog's and the snapshot builder's SQLite caches. */
const BASE = 96 * MiB;
/** A worker thread's isolate and native state besides its buffers. */
const WORKER_BASE = 16 * MiB;
/** Raw bytes of new chunks waiting for zstd, per worker. */
const PACKING_BYTES = 8 * MiB;
/** An in-memory blob spool; larger blobs spill their ciphertext to the work directory. */
const SPOOL_MEMORY_MAX = 16 * MiB;
/** Bytes of one claim-table slot (claims.ts). */
const CLAIM_SLOT = 16;
const CLAIM_SLOTS_MAX = 1 << 20;

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
