import { availableParallelism } from "node:os";

// How a restore spends its memory: the one place that turns a memory limit into writer threads
// and bytes in flight, so a `memory_limit` setting can fix both whatever the core count.
//
// The split assumes ~96 MiB for the process without writer threads and ~64 MiB per thread (an
// isolate, a malloc arena, decrypt and decompress buffers), bytes in flight held about three
// times (ciphertext, plaintext, decompressed chunks). It is not yet met as a whole: on the bench
// corpus two threads peak at 413-445 MB, one at 367 MB (bench/results/2026-11-28-restore-workers.md);
// what the budget does fix is what the restore itself holds, whatever the cores or the files.

export const DEFAULT_MEMORY_LIMIT = 256 * 1024 * 1024;

/** What the process needs before any writer thread. */
const BASE = 96 * 1024 * 1024;
/** What one writer thread adds. */
const PER_WRITER = 64 * 1024 * 1024;
/** Writer threads beyond this do not help: the file system is the limit. */
const MAX_WRITERS = 8;

export interface RestoreBudget {
  /** Writer threads (each decrypts, decompresses, verifies and writes whole blobs). */
  writers: number;
  /** Ciphertext handed to writer threads and not yet processed, at most (and as much again in batch buffers). */
  bytesInFlight: number;
}

/** The writer threads and bytes in flight a restore may use within `memoryLimit` bytes on `cores` cores. */
export function restoreBudget(memoryLimit = DEFAULT_MEMORY_LIMIT, cores = availableParallelism()): RestoreBudget {
  const writers = Math.max(1, Math.min(cores, MAX_WRITERS, Math.floor((memoryLimit - BASE) / PER_WRITER)));
  // A sixteenth of the limit, at least 4 MiB so each thread always has a 1 MiB read or more to work on.
  const bytesInFlight = Math.max(4 << 20, Math.floor(memoryLimit / 16));
  return { writers, bytesInFlight };
}
