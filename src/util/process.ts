import { readFileSync } from "node:fs";
import { hostname } from "node:os";

/**
 * When process `pid` started, in clock ticks since boot (/proc/PID/stat field 22), or undefined
 * where there is no /proc or no such process. A pid and its start time name one process for
 * good: a pid alone is reused by an unrelated process after the first one dies.
 */
export function processStart(pid: number): string | undefined {
  try {
    return statFields(readFileSync(`/proc/${pid}/stat`, "utf8"))[22 - 3];
  } catch {
    return undefined;
  }
}

/** The fields of a /proc stat line from field 3 (state) on: element i is field i + 3. */
export function statFields(line: string): string[] {
  // The command name (field 2) may hold spaces and parentheses; fields after the last ")" do not.
  return line.slice(line.lastIndexOf(")") + 2).split(" ");
}

/** This process's start time, as processStart gives it (read once). */
export const ownStart: string | undefined = processStart(process.pid);

/**
 * Whether the process that wrote a lock may still be running. Only a process of this host can
 * be checked; one of another host (a shared index, a second prune machine) counts as alive.
 * With `start` (processStart of the holder when it took the lock), a live process with the same
 * pid but another start time is a stranger that reused the pid: the holder is gone.
 */
export function holderAlive(host: unknown, pid: unknown, start?: unknown): boolean {
  if (host !== hostname() || typeof pid !== "number") return true;
  return pidAlive(pid, typeof start === "string" ? start : undefined);
}

/** pid (started at `start`, when known) is a live process of this host. */
export function pidAlive(pid: number, start?: string): boolean {
  if (pid === process.pid) return start === undefined || start === ownStart;
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  if (start === undefined) return true;
  const now = processStart(pid);
  // Without /proc there is nothing to compare: the live pid is taken for the holder.
  return now === undefined || now === start;
}
