import { createHash } from "node:crypto";
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import type { ChunkLocation } from "../model/chunk.js";
import { HASH } from "../model/ids.js";
import type { Pace } from "../util/pace.js";

// A re-run of an interrupted restore into the same target skips the files the first run
// finished. Like restic, cheap checks first (a regular file with the entry's size, and the mode
// and mtime a restore gives it, which an unfinished file does not have), then the content: each
// chunk's bytes hashed against the chunk's id. Reading is the price of never keeping a file that
// looks right but is not (a torn write, a later edit that kept size and mtime).

export interface Expected {
  size: number;
  mode: number;
  uid: number;
  gid: number;
  mtimeNs: bigint;
}

/** Bytes read at a time while hashing: a chunk can be up to 64 MiB. */
const READ_SIZE = 1 << 20;

/**
 * Whether `abs` holds exactly the entry: `chunks` are its chunks in file order. A symlink or
 * anything but a regular file of one link is never taken (opened with O_NOFOLLOW).
 */
export async function restoredBefore(abs: string, want: Expected, chunks: Iterable<ChunkLocation>, owners: boolean, pace: Pace): Promise<boolean> {
  let fd: number;
  try {
    fd = openSync(abs, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return false;
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    // A hard link shares its bytes with a file outside the restore: never kept (see removeIfPresent).
    if (!st.isFile() || st.nlink !== 1n || st.size !== BigInt(want.size) || Number(st.mode & 0o7777n) !== (want.mode & 0o7777)) return false;
    // Restore sets times to the microsecond (utimeSeconds).
    if (st.mtimeNs / 1000n !== want.mtimeNs / 1000n) return false;
    if (owners && (Number(st.uid) !== want.uid || Number(st.gid) !== want.gid)) return false;
    const buf = Buffer.allocUnsafe(READ_SIZE);
    let pos = 0;
    for (const loc of chunks) {
      await pace.tick();
      if (pos + loc.rawLength > want.size) return false;
      const hash = createHash(HASH);
      for (let left = loc.rawLength; left > 0; ) {
        const n = readSync(fd, buf, 0, Math.min(left, READ_SIZE), pos);
        if (n === 0) return false;
        hash.update(buf.subarray(0, n));
        pos += n;
        left -= n;
      }
      if (hash.digest("hex") !== loc.id) return false;
    }
    return pos === want.size;
  } finally {
    closeSync(fd);
  }
}
