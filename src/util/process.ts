import { hostname } from "node:os";

/**
 * Whether the process that wrote a lock may still be running. Only a process of this host can
 * be checked; one of another host (a shared index, a second prune machine) counts as alive.
 */
export function holderAlive(host: unknown, pid: unknown): boolean {
  if (host !== hostname() || typeof pid !== "number") return true;
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
