import { writeSync } from "node:fs";

// TEST-ONLY fault injection at named points, read only under vitest (VITEST is set in test
// workers and inherited by the CLI they spawn), so a stray export in production does nothing;
// otherwise a point is one comparison.
//
// VAULTIK_TEST_CRASH_AT=<point>[:<n>] makes a backup kill itself with SIGKILL the n-th time
// (default: the first) it passes a crash point, so "kill -9 between the blob put and the catalog
// commit" happens exactly there, on any machine, instead of at a guessed number of milliseconds.
//
// VAULTIK_TEST_SIGNAL_AT=<point>:<n>:<SIGNAL> makes a command send itself SIGNAL the n-th time
// it passes a loop's point, which is the same as a user's Ctrl-C landing inside that loop. The
// point says so on stderr, and if the loop goes on for LOOP_GRACE more passes after the signal
// (it does not check its abort signal), the process says that and kills itself with SIGKILL: a
// test sees that as a failure without timing anything.

/** The named points, in the order a backup passes them. */
export type CrashPoint =
  | "after-blob-put" // a blob is stored, the catalog does not know it yet
  | "after-catalog-commit" // a blob and its chunks are recorded in the catalog
  | "after-files-commit" // a batch of file rows (path, stamp → chunks) is recorded
  | "before-snapshot-put" // every blob is stored, the snapshot database is not
  | "after-snapshot-put"; // the snapshot is stored, the catalog's last_snapshot is not updated

/** Long loops of the commands that read a repository (each passes its point once per item). */
export type TestPoint =
  | "restore-entries" // restore/fetch pass 1: a snapshot entry
  | "restore-placements" // restore/fetch pass 2: a chunk placement
  | "restore-finish" // restore/fetch pass 3: a snapshot entry
  | "restore-file-written" // restore: a file's content is written and acknowledged
  | "dump-chunks" // fetch … -: a chunk of the file
  | "check-chunks" // check --read-data: a chunk location of a snapshot
  | "blobs-listed"; // check, prune: a blob a snapshot references

/** Passes a loop may make after its signal before it counts as ignoring it. */
const LOOP_GRACE = 5000;

const crash = process.env["VITEST"] ? parse(process.env["VAULTIK_TEST_CRASH_AT"]) : undefined;
const signal = process.env["VITEST"] ? parse(process.env["VAULTIK_TEST_SIGNAL_AT"]) : undefined;
let passes = 0;
let signalPasses = 0;

export function crashPoint(point: CrashPoint): void {
  if (crash === undefined || crash.point !== point) return;
  if (++passes === crash.nth) process.kill(process.pid, "SIGKILL");
}

export function testPoint(point: TestPoint): void {
  if (signal === undefined || signal.point !== point) return;
  const n = ++signalPasses;
  if (n === signal.nth) {
    writeSync(2, `vaultik: test point ${point}: sending ${signal.signal} (pass ${n})\n`);
    process.kill(process.pid, signal.signal as NodeJS.Signals);
  } else if (n === signal.nth + LOOP_GRACE) {
    writeSync(2, `vaultik: test point ${point}: still looping ${LOOP_GRACE} passes after ${signal.signal}\n`);
    process.kill(process.pid, "SIGKILL");
  }
}

function parse(spec: string | undefined): { point: string; nth: number; signal: string } | undefined {
  if (!spec) return undefined;
  const [point = "", nth = "1", sig = "SIGINT"] = spec.split(":");
  return { point, nth: Number(nth), signal: sig };
}
