import type { X25519Identity } from "../crypto/keys.js";
import { ConfigError, errorMessage } from "../errors.js";
import type { Notice, Repository, RunMarker } from "../repo/repository.js";
import { liveBlobs } from "../snapshot/blobs.js";
import type { RetentionPolicy } from "./policy.js";
import { planPrune, runIsActive, type NoticeDecision } from "./plan.js";
import { applyRetention, type RetentionResult } from "./retention.js";

// One prune: apply retention, forget what it drops, then delete unreferenced blobs in two
// steps (announce, then delete at a later step once it is safe; see plan.ts). With a zero
// safety window and no backup running, both steps happen in one run.

export interface PruneOptions {
  repo: Repository;
  identities: readonly X25519Identity[];
  policy: RetentionPolicy;
  /** Per snapshot host, a policy over `policy`: each app of a config keeps its own retention. */
  hostPolicies?: ReadonlyMap<string, RetentionPolicy>;
  dryRun?: boolean;
  /** Blobs younger than this are never touched. Default 24 h. */
  graceMs?: number;
  /** Time between announcing blobs and deleting them. Default 1 h. */
  windowMs?: number;
  staleRunMs?: number;
  now?: () => number;
  signal?: AbortSignal;
  log?: (line: string) => void;
  /** Allow deleting blobs when no snapshot at all is found (see prune()). */
  force?: boolean;
}

export interface PruneReport {
  retention: RetentionResult;
  snapshotsRemoved: string[];
  blobsDeleted: number;
  bytesDeleted: number;
  blobsAnnounced: number;
  bytesAnnounced: number;
  blobsYoung: number;
  bytesYoung: number;
  /** When the last blob inside the grace period leaves it: a prune from then on announces it. */
  youngUntil?: number;
  /** Backups, still running, that hold back blobs uploaded since they started. */
  youngHeldBy: string[];
  graceMs: number;
  windowMs: number;
  deferred: DeferredNotice[];
  spared: number;
  dryRun: boolean;
}

/** A notice whose blobs this prune did not delete, and what it waits for. */
export interface DeferredNotice {
  notice: string;
  reason: string;
  blobs: number;
  /** Waiting for the safety window: a prune from this time on deletes the blobs. */
  deletableAfter?: number;
  /** Waiting for these backups to end. */
  waitingFor?: string[];
}

export const DAY = 24 * 3600_000;
/** prune's defaults, which `vaultik stats` assumes too when it says what a prune could free. */
export const DEFAULT_WINDOW_MS = 3600_000;
export const DEFAULT_STALE_RUN_MS = 3600_000;
export const SKEW = 60_000;
const DONE_KEEP = 30 * DAY;
const DEAD_RUN_KEEP = DAY;

export async function prune(o: PruneOptions): Promise<PruneReport> {
  const now = o.now ?? Date.now;
  const { repo, signal } = o;
  const log = o.log ?? (() => {});
  const graceMs = o.graceMs ?? DAY;
  const windowMs = o.windowMs ?? DEFAULT_WINDOW_MS;
  const staleRunMs = o.staleRunMs ?? DEFAULT_STALE_RUN_MS;
  const dryRun = o.dryRun ?? false;
  const lock = dryRun ? undefined : await repo.acquirePruneLock(now(), 6 * 3600_000, { signal });
  try {
    // Runs first, then snapshots: a backup finishing in between then shows as a run whose
    // snapshot we did not read, which blocks deletion, instead of slipping through.
    let runs = await repo.runs({ signal });
    const all = await repo.listSnapshots({ signal });
    if (all.length === 0 && !o.force) await refuseEmpty(repo, signal);
    const retention = applyRetention(all, o.policy, new Date(now()), o.hostPolicies);
    const removed = new Set(retention.remove.map((s) => s.id));
    const kept = all.filter((s) => !removed.has(s.id));
    // Read every kept snapshot before forgetting any: while one cannot be read, what it
    // references is unknown, and the prune must change nothing at all.
    const { live, liveFrom } = await liveBlobs(repo, kept, o.identities, signal);
    if (!dryRun) {
      for (const s of all.filter((x) => removed.has(x.id))) {
        await repo.deleteSnapshot(s, { signal });
        log(`forgot snapshot ${s.id}`);
      }
    }
    const blobs = await repo.listBlobs({ signal });
    let existing = new Set(kept.map((s) => s.id));
    const notices = await repo.notices("pending", { signal, onBad: (k, e) => log(`ignoring unreadable notice ${k}: ${errorMessage(e)}`) });
    const input = { now: now(), graceMs, windowMs, skewMs: SKEW, staleRunMs, blobs, live, liveFrom, existing, notices, runs };
    const plan = planPrune(input);
    const report: PruneReport = {
      retention, snapshotsRemoved: [...removed], blobsDeleted: 0, bytesDeleted: 0,
      blobsAnnounced: plan.announce.length, bytesAnnounced: plan.announceBytes,
      blobsYoung: plan.young, bytesYoung: plan.youngBytes, youngUntil: plan.youngUntil, youngHeldBy: plan.heldBy,
      graceMs, windowMs, deferred: [], spared: 0, dryRun,
    };
    const sizes = new Map<string, number>(blobs.map((b) => [b.name, b.size]));
    if (dryRun) {
      // What a run now would delete: every unreferenced blob past the grace period, at the latest
      // after the safety window.
      for (const d of plan.notices) report.blobsDeleted += d.remove.length;
      return report;
    }
    await execute(plan.notices);
    if (plan.announce.length > 0) {
      const notice = await repo.publishNotice(plan.announce, now(), now() + windowMs, { signal });
      log(`announced ${plan.announce.length} unreferenced blob(s) for deletion in ${notice.key}`);
      if (windowMs === 0) {
        // Deleting right away is only safe against runs seen *after* the notice is visible.
        runs = await repo.runs({ signal });
        existing = new Set((await repo.listSnapshots({ signal })).map((s) => s.id));
        const again = planPrune({ ...input, now: now(), notices: [notice], runs, existing, blobs: [] });
        await execute(again.notices);
      } else {
        const deletableAfter = notice.published + windowMs;
        report.deferred.push({ notice: notice.key, reason: `safety window until ${new Date(deletableAfter).toISOString()}`, blobs: notice.blobs.length, deletableAfter });
      }
    }
    await tidy(repo, runs, existing, now(), signal);
    return report;

    async function execute(decisions: readonly NoticeDecision[]): Promise<void> {
      for (const d of decisions) {
        report.spared += d.spared.length;
        if (d.deferred) {
          report.deferred.push({ notice: d.notice.key, reason: d.deferred, blobs: d.notice.blobs.length, deletableAfter: d.deletableAfter, waitingFor: d.waitingFor });
          log(`waiting with ${d.notice.key}: ${d.deferred}`);
          continue;
        }
        for (const name of d.remove) {
          // Not listed: an earlier prune, killed after deleting it, already did. Report only
          // what this run deletes.
          const size = sizes.get(name);
          if (size === undefined) continue;
          await repo.deleteBlob(name, { signal });
          report.blobsDeleted++;
          report.bytesDeleted += size;
        }
        await repo.retireNotice(d.notice, now(), { signal });
      }
    }
  } finally {
    await lock?.release();
  }
}

/**
 * No snapshot but blobs: most likely the wrong index prefix, and going on would delete the whole
 * repository. Deleting everything is allowed only with `force`.
 */
async function refuseEmpty(repo: Repository, signal?: AbortSignal): Promise<void> {
  const blobs = await repo.listBlobs({ signal });
  if (blobs.length === 0) return;
  throw new ConfigError(
    "--index-prefix",
    `no snapshots under ${repo.location}/${repo.indexPrefix} but ${blobs.length} blobs exist; if the index prefix is right ` +
      "and every blob should go, run prune again with --force",
  );
}

/** Removes heartbeats of finished or long-dead runs and old done-notices. */
async function tidy(repo: Repository, runs: readonly RunMarker[], existing: ReadonlySet<string>, now: number, signal?: AbortSignal): Promise<void> {
  for (const r of runs) {
    const finished = existing.has(r.snapshotId);
    const dead = !runIsActive(r, { now, staleRunMs: DEAD_RUN_KEEP, existing });
    if (finished || dead) await repo.deleteRun(r, { signal });
  }
  for (const n of await repo.notices("done", { signal })) {
    if (n.published < now - DONE_KEEP) await repo.deleteNotice(n, { signal });
  }
}

export type { Notice };
