import { createHash } from "node:crypto";
import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";
import { HASH } from "../model/ids.js";
import { fsPath } from "../model/path-bytes.js";
import type { FileChunk } from "../snapshot/read.js";
import type { Pace } from "../util/pace.js";

// A re-run of an interrupted restore into the same target skips the files the first run
// finished. Like restic, cheap checks first (a regular file with the entry's size, and the mode
// and mtime a restore gives it, which an unfinished file does not have), then the content: each
// chunk's bytes, at its offset in the file, hashed against the chunk's id, and every byte outside
// the chunks (the holes) read and found zero. Reading is the price of never keeping a file that
// looks right but is not (a torn write, a later edit that kept size and mtime); a hole reads
// without touching the disk.

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
 * Whether `abs` holds exactly the entry: `chunks` are its chunks in file order, with their
 * offsets. A symlink or anything but a regular file of one link is never taken (opened with
 * O_NOFOLLOW).
 */
export async function restoredBefore(abs: string, want: Expected, chunks: Iterable<FileChunk>, owners: boolean, pace: Pace): Promise<boolean> {
  let fd: number;
  try {
    fd = openSync(fsPath(abs), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
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
    for (const c of chunks) {
      if (c.fileOffset < pos || c.fileOffset + c.rawLength > want.size) return false;
      if (!(await zeros(fd, buf, pos, c.fileOffset, pace))) return false;
      const hash = createHash(HASH);
      for (let at = c.fileOffset, end = c.fileOffset + c.rawLength; at < end; ) {
        await pace.tick();
        const n = readSync(fd, buf, 0, Math.min(end - at, READ_SIZE), at);
        if (n === 0) return false;
        hash.update(buf.subarray(0, n));
        at += n;
      }
      if (hash.digest("hex") !== c.id) return false;
      pos = c.fileOffset + c.rawLength;
    }
    return await zeros(fd, buf, pos, want.size, pace);
  } finally {
    closeSync(fd);
  }
}

const ZERO = Buffer.alloc(READ_SIZE);

/** Whether bytes [from, to) of `fd` are all zero (a hole, or zeros written). */
async function zeros(fd: number, buf: Buffer, from: number, to: number, pace: Pace): Promise<boolean> {
  for (let at = from; at < to; ) {
    await pace.tick();
    const n = readSync(fd, buf, 0, Math.min(to - at, READ_SIZE), at);
    if (n === 0 || !buf.subarray(0, n).equals(ZERO.subarray(0, n))) return false;
    at += n;
  }
  return true;
}
