import type { Repository, StoredBlob } from "../repo/repository.js";
import { planPrune } from "./plan.js";
import { DAY, DEFAULT_STALE_RUN_MS, DEFAULT_WINDOW_MS, SKEW } from "./prune.js";

// What prunes could free, by the rules prune itself applies (plan.ts), without deciding or
// changing anything: `vaultik stats` reports it.

export interface Amount {
  blobs: number;
  bytes: number;
}

export interface Reclaimable {
  /** Blobs no snapshot references: what prunes free, unless a new snapshot comes to use them. */
  unreferenced: Amount;
  /** Of those, what a prune now would delete: announced long enough ago, no backup holds them. */
  deletableNow: Amount;
  /** Announced, and waiting for the safety window or for a backup that started before the notice. */
  announced: Amount;
  /** Not announced yet, past the grace period: a prune now announces them, one a safety window later deletes them. */
  announceNow: Amount;
  /** Inside the grace period, or uploaded since a backup still running started: later. */
  young: Amount;
  graceMs: number;
  windowMs: number;
}

/**
 * Splits the listed blobs that no snapshot references (`live` holds the referenced ones, from
 * every snapshot in `existing`) the way a prune with the default grace period and safety
 * window would at `now`, with no snapshot forgotten.
 */
export async function reclaimable(
  repo: Repository,
  blobs: readonly StoredBlob[],
  live: ReadonlySet<string>,
  existing: ReadonlySet<string>,
  now: number,
  signal?: AbortSignal,
): Promise<Reclaimable> {
  const runs = await repo.runs({ signal });
  const notices = await repo.notices("pending", { signal, onBad: () => {} });
  const graceMs = DAY;
  const windowMs = DEFAULT_WINDOW_MS;
  const plan = planPrune({ now, graceMs, windowMs, skewMs: SKEW, staleRunMs: DEFAULT_STALE_RUN_MS, blobs, live, liveFrom: existing, existing, notices, runs });
  const removable = new Set(plan.notices.flatMap((d) => d.remove));
  const announced = new Set(plan.notices.flatMap((d) => d.notice.blobs));
  const announceNow = new Set(plan.announce);
  const out: Reclaimable = {
    unreferenced: { blobs: 0, bytes: 0 },
    deletableNow: { blobs: 0, bytes: 0 },
    announced: { blobs: 0, bytes: 0 },
    announceNow: { blobs: 0, bytes: 0 },
    young: { blobs: 0, bytes: 0 },
    graceMs,
    windowMs,
  };
  const add = (a: Amount, size: number) => {
    a.blobs++;
    a.bytes += size;
  };
  for (const b of blobs) {
    if (live.has(b.name)) continue;
    add(out.unreferenced, b.size);
    if (removable.has(b.name)) add(out.deletableNow, b.size);
    else if (announced.has(b.name)) add(out.announced, b.size);
    else if (announceNow.has(b.name)) add(out.announceNow, b.size);
    else add(out.young, b.size);
  }
  return out;
}
