import { mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import type { DaemonState } from "./state.js";

// The daemon's state on disk, beside the index, for `vaultik health-check` (Docker HEALTHCHECK
// runs it as a separate process, with no HTTP server required). Written whole and renamed into
// place, so a reader never sees half a file.

export interface StateFile {
  state: DaemonState;
  staleAfterMs: number;
  writtenAt: string;
}

export function stateFilePath(indexPath: string): string {
  return `${indexPath}.d/daemon-state.json`;
}

export function writeStateFile(indexPath: string, state: DaemonState, staleAfterMs: number): void {
  const path = stateFilePath(indexPath);
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const body: StateFile = { state, staleAfterMs, writtenAt: new Date().toISOString() };
  writeFileSync(`${path}.tmp`, `${JSON.stringify(body, null, 1)}\n`, { mode: 0o600 });
  renameSync(`${path}.tmp`, path);
}

export function readStateFile(indexPath: string): StateFile | undefined {
  try {
    return JSON.parse(readFileSync(stateFilePath(indexPath), "utf8")) as StateFile;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}
