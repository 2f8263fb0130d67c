import { closeSync, constants, openSync } from "node:fs";
import fsExt from "fs-ext";
import { fsPath } from "../model/path-bytes.js";

// Where a file with holes keeps its data. lseek(SEEK_DATA/SEEK_HOLE) asks the file system, so
// a 100 MiB file with 4 KiB of data costs a few system calls instead of reading 100 MiB of
// zeros. Only files whose allocated blocks fall short of their size are asked (the walker's
// lstat tells): a dense file is read end to end as before, with no extra call.
//
// Main thread only: fs-ext is an old-style addon whose second load in a process (a new worker
// thread after another ended, as each backup run starts its chunk workers) aborts Node ("Check
// failed: node->IsInUse()"). The chunk workers get the regions in their task message instead.

const SEEK_DATA = 3;
const SEEK_HOLE = 4;

/** The data regions of the regular file at `abs` (see dataRegions); throws what open throws. */
export function sparseRegions(abs: string, size: number): [number, number][] {
  const fd = openSync(fsPath(abs), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  try {
    return dataRegions(fd, size);
  } finally {
    closeSync(fd);
  }
}

/** [start, end) byte ranges holding data, in order, within the first `size` bytes. */
export function dataRegions(fd: number, size: number): [number, number][] {
  const out: [number, number][] = [];
  for (let pos = 0; pos < size; ) {
    let data: number;
    try {
      data = fsExt.seekSync(fd, pos, SEEK_DATA);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENXIO") break; // no data past pos: the rest is a hole
      // A file system without SEEK_DATA: the whole file is data, as before.
      if (code === "EINVAL" || code === "EOPNOTSUPP" || code === "ENOTSUP") return size > 0 ? [[0, size]] : [];
      throw err;
    }
    if (data >= size) break;
    const hole = Math.min(fsExt.seekSync(fd, data, SEEK_HOLE), size);
    out.push([data, hole]);
    pos = hole;
  }
  return out;
}
