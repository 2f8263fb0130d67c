import { dirname } from "node:path";

// Writer threads creating files in one directory at the same time contend for its lock in the
// kernel, which spins: 4.7 times the kernel time of one thread doing it (3.5 s against 0.74 s of
// `open` for the bench corpus). Each thread takes whole blobs, whose files may share directories
// with another thread's, so file creation takes a lock of ours first, shared by all threads, one
// per bucket of directories: a waiter sleeps instead. The lock only saves time, it guards
// nothing: a thread that waits too long (a thread that died holding it) goes on without it.

/** Buckets of directories: two busy directories rarely share one. */
export const DIR_LOCKS = 64;
/** How long a thread waits for a bucket before it goes on without it. */
const PATIENCE_MS = 1000;

/** A number for directory `dir`: the same directory, the same number (a route, a lock bucket). */
export function routeOf(dir: string): number {
  // FNV-1a over UTF-16 code units: cheap, and spreads sibling directories.
  let h = 0x811c9dc5;
  for (let i = 0; i < dir.length; i++) h = Math.imul(h ^ dir.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** The locks' shared memory, made once and handed to every thread. */
export function newDirLocks(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(DIR_LOCKS * Int32Array.BYTES_PER_ELEMENT));
}

/** Runs `create` (which makes the file `abs`) holding the lock of its directory's bucket. */
export function inDirLock<T>(locks: Int32Array | undefined, abs: string, create: () => T): T {
  if (!locks) return create();
  const bucket = routeOf(dirname(abs)) % locks.length;
  let held = false;
  const until = Date.now() + PATIENCE_MS;
  for (;;) {
    if (Atomics.compareExchange(locks, bucket, 0, 1) === 0) {
      held = true;
      break;
    }
    const left = until - Date.now();
    if (left <= 0) break;
    Atomics.wait(locks, bucket, 1, left);
  }
  try {
    return create();
  } finally {
    if (held) {
      Atomics.store(locks, bucket, 0);
      Atomics.notify(locks, bucket, 1);
    }
  }
}
