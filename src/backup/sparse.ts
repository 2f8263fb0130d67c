import fsExt from "fs-ext";

// Where a file with holes keeps its data. lseek(SEEK_DATA/SEEK_HOLE) asks the file system, so
// a 100 MiB file with 4 KiB of data costs a few system calls instead of reading 100 MiB of
// zeros. Only files whose allocated blocks fall short of their size are asked (the walker's
// lstat tells): a dense file is read end to end as before, with no extra call.

const SEEK_DATA = 3;
const SEEK_HOLE = 4;

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
