import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from "node:fs";
import type { FileHandle } from "node:fs/promises";
import { dirname } from "node:path";

// write(2) may write fewer bytes than asked. On a disk that fills mid-write it writes what fits
// and returns that count; only the next call fails with ENOSPC. A loop that adds the length it
// asked for instead of the count it got publishes a truncated file as whole (a lost blob, once).
// Every descriptor in vaultik is written through these helpers, so that cannot happen again.

/** The one place a write's count is checked; a test replaces it to inject short writes. */
export interface WriteLayer {
  write(fh: FileHandle, data: Uint8Array, offset: number, length: number, position: number | null): Promise<number>;
  writev(fh: FileHandle, parts: readonly Uint8Array[]): Promise<number>;
  writeSync(fd: number, data: Uint8Array, offset: number, length: number, position: number | null): number;
}

const nodeLayer: WriteLayer = {
  async write(fh, data, offset, length, position) {
    return (await fh.write(data, offset, length, position)).bytesWritten;
  },
  async writev(fh, parts) {
    return (await fh.writev(parts as Uint8Array[])).bytesWritten;
  },
  writeSync(fd, data, offset, length, position) {
    return writeSync(fd, data, offset, length, position);
  },
};

let layer: WriteLayer = nodeLayer;

/** For tests: routes every write through `replacement` until the returned function is called. */
export function setWriteLayer(replacement: WriteLayer): () => void {
  layer = replacement;
  return () => {
    layer = nodeLayer;
  };
}

/** A write that made no progress: never loop on it (a regular file says ENOSPC instead). */
function noProgress(): NodeJS.ErrnoException {
  return Object.assign(new Error("ENOSPC: no space left on device, write made no progress"), { code: "ENOSPC" });
}

/** Writes all of `data` at `position` (or the file position when null), however many calls it takes. */
export async function writeAll(fh: FileHandle, data: Uint8Array, position: number | null = null): Promise<void> {
  for (let done = 0; done < data.length; ) {
    const n = await layer.write(fh, data, done, data.length - done, position === null ? null : position + done);
    if (n <= 0) throw noProgress();
    done += n;
  }
}

/** Appends all of `parts` in order at the file position, in as few writev calls as the kernel allows. */
export async function writevAll(fh: FileHandle, parts: readonly Uint8Array[]): Promise<void> {
  let pending = parts.filter((p) => p.length > 0);
  while (pending.length > 0) {
    let n = await layer.writev(fh, pending);
    if (n <= 0) throw noProgress();
    const rest: Uint8Array[] = [];
    for (const p of pending) {
      if (n >= p.length) n -= p.length;
      else {
        rest.push(p.subarray(n));
        n = 0;
      }
    }
    pending = rest;
  }
}

/** Synchronous writeAll, for descriptors owned by a thread that must not yield. */
export function writeAllSync(fd: number, data: Uint8Array, position: number | null = null): void {
  for (let done = 0; done < data.length; ) {
    const n = layer.writeSync(fd, data, done, data.length - done, position === null ? null : position + done);
    if (n <= 0) throw noProgress();
    done += n;
  }
}

/**
 * Replaces `path` with `data` so that a reader sees the old file or the new one, never a part:
 * written whole to a temp file beside it, synced, then renamed over it. On failure (a full disk)
 * the temp file is removed and `path` is left as it was.
 */
export function writeFileAtomicSync(path: string, data: string | Uint8Array, mode = 0o600): void {
  const tmp = `${path}.${process.pid}.tmp`;
  const bytes = typeof data === "string" ? Buffer.from(data) : data;
  let fd: number | undefined;
  try {
    fd = openSync(tmp, "w", mode);
    writeAllSync(fd, bytes);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, path);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
    throw err;
  }
  syncDirSync(dirname(path));
}

/** Persists a directory's entries (a rename, a new file); filesystems that refuse it are accepted. */
export function syncDirSync(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, "r");
    fsyncSync(fd);
  } catch {
    // EINVAL/EISDIR/EPERM on some filesystems: their entries are as durable as they get.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}
