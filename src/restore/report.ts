import type { EntryType } from "../snapshot/schema.js";

// What became of each entry of a restore that did not simply succeed: the entries that failed
// (each once, with the first reason) and the warnings. A restore goes on past a failed entry,
// so this is what its summary and exit code are made from. Only failures are kept, so memory
// grows with the damage, not with the snapshot.

export interface EntryProblem {
  /** Snapshot path (what `fetch` takes), or the object concerned when no entry is. */
  path: string;
  /** Where the entry was to be restored, when that was known. */
  target?: string;
  message: string;
}

export type FailureCounts = Record<`${EntryType}s`, number>;

/** Why a file of the snapshot is restored but may not be what the source held. */
export const TORN_FILE = "changed while it was being backed up: its content may mix old and new data (a torn read)";

export class RestoreReport {
  private readonly failures = new Map<number, EntryProblem & { type: EntryType }>();
  private readonly warned: EntryProblem[] = [];

  /**
   * Records that entry `id` failed; only its first failure counts (the later ones follow from it).
   * `path` may be unknown (a writer thread knows a destination, not the snapshot path): name()
   * fills it in once the entry is seen again.
   */
  fail(id: number, type: EntryType, problem: { path?: string; target?: string; message: string }): void {
    if (this.failures.has(id)) return;
    this.failures.set(id, { type, path: problem.path ?? "", message: problem.message, ...(problem.target === undefined ? {} : { target: problem.target }) });
  }

  failed(id: number): boolean {
    return this.failures.has(id);
  }

  /** Gives a failure recorded without its snapshot path that path. */
  name(id: number, path: string): void {
    const f = this.failures.get(id);
    if (f && f.path === "") f.path = path;
  }

  warn(path: string, message: string): void {
    this.warned.push({ path, message });
  }

  counts(): FailureCounts {
    const counts: FailureCounts = { files: 0, dirs: 0, symlinks: 0, fifos: 0, chardevs: 0, blockdevs: 0 };
    for (const f of this.failures.values()) counts[`${f.type}s`]++;
    return counts;
  }

  /** Every failure, in path order. */
  errors(): EntryProblem[] {
    return [...this.failures.values()].map(({ type: _, ...p }) => p).sort(byPath);
  }

  warnings(): EntryProblem[] {
    return [...this.warned].sort(byPath);
  }
}

function byPath(a: EntryProblem, b: EntryProblem): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}
