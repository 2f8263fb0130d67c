// TEST-ONLY crash injection. The crash tests set VAULTIK_TEST_CRASH_AT=<point>[:<n>] to make a
// backup kill itself with SIGKILL the n-th time (default: the first) it passes a named point,
// so "kill -9 between the blob put and the catalog commit" happens exactly there, on any
// machine, instead of at a guessed number of milliseconds. Nothing sets the variable outside
// test/, and it is read only under vitest (VITEST is set in test workers and inherited by the
// CLI they spawn), so a stray export in production does nothing; otherwise a crash point is
// one comparison.

/** The named points, in the order a backup passes them. */
export type CrashPoint =
  | "after-blob-put" // a blob is stored, the catalog does not know it yet
  | "after-catalog-commit" // a blob and its chunks are recorded in the catalog
  | "after-files-commit" // a batch of file rows (path, stamp → chunks) is recorded
  | "before-snapshot-put" // every blob is stored, the snapshot database is not
  | "after-snapshot-put"; // the snapshot is stored, the catalog's last_snapshot is not updated

const wanted = process.env["VITEST"] ? parse(process.env["VAULTIK_TEST_CRASH_AT"]) : undefined;
let passes = 0;

export function crashPoint(point: CrashPoint): void {
  if (wanted === undefined || wanted.point !== point) return;
  if (++passes === wanted.nth) process.kill(process.pid, "SIGKILL");
}

function parse(spec: string | undefined): { point: string; nth: number } | undefined {
  if (!spec) return undefined;
  const [point = "", nth = "1"] = spec.split(":");
  return { point, nth: Number(nth) };
}
