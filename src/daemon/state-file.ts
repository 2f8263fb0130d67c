import { readFileSync } from "node:fs";
import { dirname } from "node:path";
import { writeFileAtomicSync } from "../util/fsio.js";
import { makeDirsSync } from "../util/mkdir.js";
import { pidAlive } from "../util/process.js";
import { isHealthy, type DaemonState } from "./state.js";

// The daemon's state on disk, beside the index, for `vaultik health-check` (Docker HEALTHCHECK
// runs it as a separate process, with no HTTP server required) and for the next daemon, which
// takes the run history over from it. Replaced atomically, so a reader never sees half a file.

export interface StateFile {
  state: DaemonState;
  staleAfterMs: number;
  writtenAt: string;
  /** Start time of process `state.pid` (/proc/PID/stat field 22), so a reused pid is not taken for the daemon. */
  pidStartTime?: string;
}

export function stateFilePath(indexPath: string): string {
  return `${indexPath}.d/daemon-state.json`;
}

export function writeStateFile(indexPath: string, body: Omit<StateFile, "writtenAt">): void {
  const path = stateFilePath(indexPath);
  makeDirsSync(dirname(path), 0o700);
  const file: StateFile = { ...body, writtenAt: new Date().toISOString() };
  writeFileAtomicSync(path, `${JSON.stringify(file, null, 1)}\n`, 0o600);
}

export function readStateFile(indexPath: string): StateFile | undefined {
  try {
    return JSON.parse(readFileSync(stateFilePath(indexPath), "utf8")) as StateFile;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/**
 * health-check's verdict: the daemon must be running (the process that wrote the file, not just
 * its pid) and its backups healthy. A daemon that stopped cleanly says so in the file.
 */
export function daemonHealth(file: StateFile, now: number, staleAfterMs: number): { healthy: boolean; reason: string } {
  const { pid } = file.state;
  if (file.state.state === "stopped") return { healthy: false, reason: `the daemon (pid ${pid}) stopped at ${file.writtenAt}` };
  if (!pidAlive(pid, file.pidStartTime)) {
    return { healthy: false, reason: `the daemon (pid ${pid}) is not running; it ended without stopping cleanly (last state written at ${file.writtenAt})` };
  }
  return isHealthy(file.state, now, staleAfterMs);
}
