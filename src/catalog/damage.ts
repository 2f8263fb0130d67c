import { existsSync, renameSync } from "node:fs";
import type Database from "better-sqlite3";
import { LocalStateError, errorMessage } from "../errors.js";
import { Catalog } from "./db.js";

// A damaged index (a disk error, a copy cut short, a stray write) is not a reason to stop
// backing up: everything in it can be rebuilt, at the cost of re-reading the source (or less,
// with `vaultik import-catalog`). So a backup checks the index as it opens it, and when it is
// damaged, moves it aside (never deletes it: it may be evidence of a failing disk, and the user
// decides) and starts a new one. Damage first seen in the middle of a run fails that run, which
// moves the index aside the same way, so the next run rebuilds.
//
// The check is SQLite's `PRAGMA quick_check`, not `integrity_check`: on a 310 MB index (2 M
// chunks, 500 k files) quick_check took 2.9-3.3 s and integrity_check 41 s on this machine
// (2 cores, load 9); on 31 MB (200 k chunks, 50 k files) 0.36-0.44 s and 1.7 s (load 15). quick_check reads every page and checks each b-tree page's structure,
// which finds garbage, truncation and an overwritten page; it skips only the cross-checks of
// indexes against their tables, which cost the other 38 s.

/** SQLite's codes for a file that is not, or no longer, a well-formed database. */
export function damageCode(err: unknown): string | undefined {
  for (let e = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string" && (code === "SQLITE_NOTADB" || code.startsWith("SQLITE_CORRUPT"))) return code;
  }
  return undefined;
}

function describe(code: string): string {
  return code === "SQLITE_NOTADB" ? `not a SQLite database, ${code}` : `malformed, ${code}`;
}

/** Thrown by verify: the index failed the check; `reason` says how. */
class DamagedIndex extends Error {
  constructor(readonly reason: string) {
    super(reason);
  }
}

/** Throws DamagedIndex unless `db` passes quick_check. */
function verify(db: Database.Database): void {
  let result: string[];
  try {
    result = (db.pragma("quick_check(3)") as { quick_check: string }[]).map((r) => r.quick_check);
  } catch (err) {
    const code = damageCode(err);
    if (code) throw new DamagedIndex(describe(code));
    throw err;
  }
  if (result.length !== 1 || result[0] !== "ok") throw new DamagedIndex(`quick_check: ${result.join("; ")}`);
}

export interface Damage {
  /** What was wrong, as SQLite said it. */
  reason: string;
  /** Where the damaged file now is. */
  movedTo: string;
}

const checked = new Set<string>();

/**
 * Opens the index at `path` for a backup, checked; a damaged one is moved aside (see
 * moveAside) and a new, empty one opened in its place.
 */
export function openCheckedCatalog(path: string, now: Date = new Date()): { catalog: Catalog; damage?: Damage } {
  // Once per process: a daemon's later runs would pay seconds each on a large index, and damage
  // that appears meanwhile still surfaces as SQLITE_CORRUPT when a page is read (damagedDuringRun).
  if (checked.has(path)) return { catalog: new Catalog(path) };
  try {
    const catalog = new Catalog(path, { verify });
    checked.add(path);
    return { catalog };
  } catch (err) {
    const code = damageCode(err);
    const reason = err instanceof DamagedIndex ? err.reason : code && describe(code);
    if (reason === undefined) throw err;
    const movedTo = moveAside(path, reason, now);
    return { catalog: new Catalog(path), damage: { reason, movedTo } };
  }
}

/**
 * Renames the index, with its -wal and -shm (which belong to it), to
 * `<index>.damaged-<UTC time>`; returns the new name. The index must be closed.
 */
export function moveAside(path: string, reason: string, now: Date = new Date()): string {
  const stamp = now.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  let target = `${path}.damaged-${stamp}`;
  for (let n = 2; existsSync(target); n++) target = `${path}.damaged-${stamp}-${n}`;
  try {
    // The -wal first: killed between two renames, a stale -wal beside a fresh index would be
    // replayed into it; an index without its -wal is only missing its last commits.
    for (const suffix of ["-wal", "-shm"]) if (existsSync(path + suffix)) renameSync(path + suffix, target + suffix);
    renameSync(path, target);
  } catch (err) {
    throw new LocalStateError(path, `the local index is damaged (${reason}) and could not be moved aside (${errorMessage(err)}); move it away by hand`, { cause: err });
  }
  return target;
}

/** The error of a run that met damage in the closed index at `path`, which it moves aside. */
export function damagedDuringRun(path: string, code: string, cause: unknown, now?: Date): LocalStateError {
  const movedTo = moveAside(path, describe(code), now);
  return new LocalStateError(
    path,
    `the local index is damaged (${describe(code)}); nothing was committed. It was moved aside to ${movedTo} (kept for ` +
      `you to inspect, delete it when done); the next backup starts a new one`,
    { cause },
  );
}

/** The warning a backup prints when it replaced a damaged index. */
export function damageWarning(path: string, damage: Damage): string {
  return (
    `local index ${path} is damaged (${damage.reason}); moved it aside to ${damage.movedTo} (kept for you to ` +
    `inspect, delete it when done) and started a new one: this backup reads every file again, and uploads what ` +
    `it cannot find stored (vaultik import-catalog avoids that)`
  );
}
