import type { Notice, RunMarker } from "../repo/coordination.js";

// Decides, without I/O, which blobs a prune may delete now, which it only announces, and what
// holds deletion back. The rules (docs/FORMAT.md §6):
//
// 1. A blob is announced (a notice is published) when no kept snapshot references it and it is
//    older than the grace period. Announced blobs are deleted by a later step, never at once.
// 2. A notice's blobs are deleted when this prune's safety window has passed since the notice
//    was published and no backup that may have missed the notice could still reference them:
//    every run that started before the notice was published (plus a skew margin) must have
//    finished *and* its snapshot must be among those whose blobs were counted as live.
//    Otherwise the whole notice waits. The window is the deleting prune's, not the one written
//    in the notice: the run markers, not the window, are what make deletion safe (PRUNE.md).
// 3. Even then, a blob that a kept snapshot references now is spared.
//
// Backups write a heartbeat before reading notices, so a backup that did not see a notice
// always shows up here as a run that started before it.

export interface PlanInput {
  now: number;
  graceMs: number;
  /** Time between a notice's publication and the deletion of its blobs. */
  windowMs: number;
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
  /** Waiting for the safety window: when it has passed. */
  deletableAfter?: number;
  /** Waiting for these backups to end. */
  waitingFor?: string[];
}

export interface PrunePlan {
  notices: NoticeDecision[];
  /** Unreferenced blobs old enough to announce now. */
  announce: string[];
  announceBytes: number;
  /** Unreferenced blobs still inside the grace period, or uploaded since a running backup started. */
  young: number;
  youngBytes: number;
  /** When the last blob inside the grace period leaves it (undefined when there is none). */
  youngUntil?: number;
  /** Running backups that hold back the blobs uploaded since they started. */
  heldBy: string[];
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
    const deletableAfter = notice.published + input.windowMs;
    if (now < deletableAfter) {
      return { notice, remove: [], spared, deferred: `safety window until ${new Date(deletableAfter).toISOString()}`, deletableAfter };
    }
    const blockers = unsafe.filter((r) => r.started <= notice.published + input.skewMs);
    if (blockers.length > 0) {
      for (const r of blockers) blocking.add(r);
      const waitingFor = blockers.map((r) => r.snapshotId);
      return { notice, remove: [], spared, deferred: `backup ${waitingFor.join(", ")} started before the notice and has not finished`, waitingFor };
    }
    return { notice, remove: notice.blobs.filter((b) => !live.has(b)), spared };
  });
  const announce: string[] = [];
  let announceBytes = 0;
  let young = 0;
  let youngBytes = 0;
  let youngUntil: number | undefined;
  const heldBy = new Set<string>();
  for (const b of input.blobs) {
    if (live.has(b.name) || noticed.has(b.name)) continue;
    // A backup still running may have uploaded blobs its snapshot will reference; announcing
    // them would only make it refuse to commit. Everything it may have written is spared for now.
    const holders = unsafe.filter((r) => b.mtime >= r.started - input.skewMs);
    const graceEnds = b.mtime + input.graceMs;
    if (graceEnds > now || holders.length > 0) {
      young++;
      youngBytes += b.size;
      if (graceEnds > now) youngUntil = Math.max(youngUntil ?? graceEnds, graceEnds);
      for (const r of holders) heldBy.add(r.snapshotId);
    } else {
      announce.push(b.name);
      announceBytes += b.size;
    }
  }
  return { notices, announce, announceBytes, young, youngBytes, youngUntil, heldBy: [...heldBy], blocking: [...blocking] };
}
