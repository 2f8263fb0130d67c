import type { Notice, RunMarker } from "../repo/coordination.js";

// Decides, without I/O, which blobs a prune may delete now, which it only announces, and what
// holds deletion back. The rules (docs/FORMAT.md §6):
//
// 1. A blob is announced (a notice is published) when no kept snapshot references it and it is
//    older than the grace period. Announced blobs are deleted by a later step, never at once.
// 2. A notice's blobs are deleted when its safety window has passed and no backup that may
//    have missed the notice could still reference them: every run that started before the
//    notice was published (plus a skew margin) must have finished *and* its snapshot must be
//    among those whose blobs were counted as live. Otherwise the whole notice waits.
// 3. Even then, a blob that a kept snapshot references now is spared.
//
// Backups write a heartbeat before reading notices, so a backup that did not see a notice
// always shows up here as a run that started before it.

export interface PlanInput {
  now: number;
  graceMs: number;
  /** Clock skew allowed between the store's times and ours. */
  skewMs: number;
  /** A run without a heartbeat for this long, and without a snapshot, is dead. */
  staleRunMs: number;
  blobs: readonly { name: string; size: number; mtime: number }[];
  /** Blobs referenced by the kept snapshots. */
  live: ReadonlySet<string>;
  /** Snapshot ids whose references are in `live`. */
  liveFrom: ReadonlySet<string>;
  /** Snapshot ids that exist in the repository now. */
  existing: ReadonlySet<string>;
  notices: readonly Notice[];
  runs: readonly RunMarker[];
}

export interface NoticeDecision {
  notice: Notice;
  /** Blobs to delete now (empty when deferred). */
  remove: string[];
  /** Blobs of the notice that a kept snapshot references again: never deleted. */
  spared: string[];
  /** Why the notice waits, when it does. */
  deferred?: string;
}

export interface PrunePlan {
  notices: NoticeDecision[];
  /** Unreferenced blobs old enough to announce now. */
  announce: string[];
  announceBytes: number;
  /** Unreferenced blobs still inside the grace period. */
  young: number;
  youngBytes: number;
  /** Runs that block deletion (still running, or finished after the live set was taken). */
  blocking: RunMarker[];
}

/** Still running: not ended, no snapshot yet, and a recent heartbeat. */
export function runIsActive(run: RunMarker, input: Pick<PlanInput, "now" | "staleRunMs" | "existing">): boolean {
  return !run.finished && !input.existing.has(run.snapshotId) && run.lastBeat > input.now - input.staleRunMs;
}

export function planPrune(input: PlanInput): PrunePlan {
  const { now, live } = input;
  // Runs that could reference blobs we do not know about: running, or finished with a
  // snapshot we did not read.
  const unsafe = input.runs.filter((r) => runIsActive(r, input) || (input.existing.has(r.snapshotId) && !input.liveFrom.has(r.snapshotId)));
  const blocking = new Set<RunMarker>();
  const noticed = new Set<string>();
  const notices = input.notices.map((notice): NoticeDecision => {
    for (const b of notice.blobs) noticed.add(b);
    const spared = notice.blobs.filter((b) => live.has(b));
    if (now < notice.notBefore) {
      return { notice, remove: [], spared, deferred: `safety window until ${new Date(notice.notBefore).toISOString()}` };
    }
    const blockers = unsafe.filter((r) => r.started <= notice.published + input.skewMs);
    if (blockers.length > 0) {
      for (const r of blockers) blocking.add(r);
      return { notice, remove: [], spared, deferred: `backup ${blockers.map((r) => r.snapshotId).join(", ")} started before the notice and has not finished` };
    }
    return { notice, remove: notice.blobs.filter((b) => !live.has(b)), spared };
  });
  const announce: string[] = [];
  let announceBytes = 0;
  let young = 0;
  let youngBytes = 0;
  // A backup still running may have uploaded blobs its snapshot will reference; announcing them
  // would only make it refuse to commit. Everything it may have written is spared for now.
  const runningSince = Math.min(...unsafe.map((r) => r.started - input.skewMs));
  for (const b of input.blobs) {
    if (live.has(b.name) || noticed.has(b.name)) continue;
    if (b.mtime > now - input.graceMs || b.mtime >= runningSince) {
      young++;
      youngBytes += b.size;
    } else {
      announce.push(b.name);
      announceBytes += b.size;
    }
  }
  return { notices, announce, announceBytes, young, youngBytes, blocking: [...blocking] };
}
