import { mkdirSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";

// `mkdir -p` that always ends. Node 20's mkdirSync(…, { recursive: true }) retries forever
// when mkdir says ENOENT although the parent exists, which is what /proc and other pseudo
// file systems answer: a backup with its index under /proc/self spun at 100% CPU and ignored
// SIGTERM (issue 14 item 8). Here each missing directory is made once, top down, and the first
// failure is thrown as it came (an errno error naming the directory).

/** Creates `dir` and its missing parents with `mode`; returns the first directory created, if any. */
export function makeDirsSync(dir: string, mode: number): string | undefined {
  const missing: string[] = [];
  for (let d = resolve(dir); ; d = dirname(d)) {
    if (isDirectory(d)) break;
    missing.push(d);
    if (d === dirname(d)) break;
  }
  for (const d of missing.reverse()) {
    try {
      mkdirSync(d, { mode });
    } catch (err) {
      // Made meanwhile by another process: as good as ours.
      if ((err as NodeJS.ErrnoException).code === "EEXIST" && isDirectory(d)) continue;
      throw err;
    }
  }
  return missing[0];
}

/** Whether `d` is a directory; false when nothing is there, an error for anything else in the way. */
function isDirectory(d: string): boolean {
  let isDir: boolean;
  try {
    isDir = statSync(d).isDirectory();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
    throw err;
  }
  if (!isDir) throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${d}'`), { code: "ENOTDIR", path: d });
  return true;
}
