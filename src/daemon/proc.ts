import { existsSync, readFileSync } from "node:fs";

// Is the process that wrote the daemon's state file still running? A pid alone cannot say: after
// the daemon dies its pid is free, and in a container the next process often gets the same small
// number. The pid together with the process's start time (field 22 of /proc/PID/stat, clock
// ticks since boot) names one process for the life of the machine.

/** The fields of /proc/PID/stat from field 3 (state) on; undefined when there is no such process. */
function statFields(pid: number): string[] | undefined {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  } catch {
    return undefined;
  }
  // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ")".
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ");
}

const hasProc = (): boolean => existsSync("/proc/self/stat");

/** When `pid` started, as /proc reports it; undefined without /proc or without such a process. */
export function processStartTime(pid: number): string | undefined {
  return statFields(pid)?.[19];
}

/**
 * Whether `pid` is alive and, when `startTime` is known, is the same process that had it then.
 * A zombie has exited. Without /proc (not Linux) only the pid can be checked.
 */
export function isSameProcessRunning(pid: number, startTime: string | undefined): boolean {
  if (!hasProc()) return signalZero(pid);
  const fields = statFields(pid);
  if (fields === undefined || fields[0] === "Z" || fields[0] === "X") return false;
  return startTime === undefined || fields[19] === startTime;
}

function signalZero(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists but belongs to someone else, which still means it runs.
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
