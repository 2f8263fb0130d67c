import { closeSync, fsyncSync, openSync, readFileSync, rmSync } from "node:fs";
import { hostname } from "node:os";
import { LockedError } from "../errors.js";
import { writeAllSync } from "../util/fsio.js";
import { holderAlive, ownStart } from "../util/process.js";

// One backup per local index at a time: two would race on the same catalog and both upload
// the same new chunks. The lock is a file created with O_EXCL next to the index. A lock left by
// a process that died (kill -9, power loss) is taken over when its process is gone on this
// host: the pid is not running, or runs with another start time (an unrelated process that
// reused the pid, which would otherwise block every backup for as long as it lives).

export interface LockInfo {
  pid: number;
  host: string;
  started: string;
  /** The holder's start time in clock ticks since boot (/proc/PID/stat field 22), where known. */
  pidStart?: string;
}

export interface LocalLock {
  readonly path: string;
  release(): void;
}

export function acquireLocalLock(path: string, now = new Date()): LocalLock {
  for (let attempt = 0; attempt < 3; attempt++) {
    try {
      const fd = openSync(path, "wx", 0o600);
      const info: LockInfo = { pid: process.pid, host: hostname(), started: now.toISOString(), pidStart: ownStart };
      try {
        writeAllSync(fd, Buffer.from(JSON.stringify(info)));
        fsyncSync(fd);
      } catch (err) {
        // A lock we could not write whole (a full disk) would read as stale anyway: leave none.
        closeSync(fd);
        rmSync(path, { force: true });
        throw err;
      }
      closeSync(fd);
      let released = false;
      return {
        path,
        release() {
          if (released) return;
          released = true;
          rmSync(path, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
      const holder = readLock(path);
      if (holder && holderAlive(holder.host, holder.pid, holder.pidStart)) {
        throw new LockedError(
          path,
          `another vaultik backup is running (pid ${holder.pid} on ${holder.host}, since ${holder.started}); this run did nothing`,
        );
      }
      // Stale (its process is gone) or unreadable (cut while being written): take it over.
      rmSync(path, { force: true });
    }
  }
  throw new LockedError(path, "could not take the lock; another process keeps creating it");
}

function readLock(path: string): LockInfo | undefined {
  try {
    const info = JSON.parse(readFileSync(path, "utf8")) as Partial<LockInfo>;
    if (typeof info.pid === "number" && typeof info.host === "string" && typeof info.started === "string") return info as LockInfo;
  } catch {
    // Unreadable or half-written: treated as stale.
  }
  return undefined;
}

