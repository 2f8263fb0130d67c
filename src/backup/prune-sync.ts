import type { Catalog } from "../catalog/db.js";
import { IntegrityError } from "../errors.js";
import { blobNameOfKey } from "../pack/names.js";
import { beat, DONE_PREFIX, endRun, listNotices, PENDING_PREFIX } from "../repo/coordination.js";
import type { CallOptions, Store } from "../store/store.js";

// How a backup stays out of a prune's way (docs/FORMAT.md §6). Before deduplicating it
// announces itself with a heartbeat, then drops from its index every blob a prune has
// announced or already deleted, and every blob the store no longer lists (an index days old
// knows nothing of prunes since). Before committing its snapshot it checks again.

export const HEARTBEAT_MS = 5 * 60_000;

export interface Heartbeat {
  /** Store time of the first heartbeat. */
  readonly started: number;
  /** Local time of the last heartbeat the store accepted. */
  readonly lastOk: number;
  /** Stops beating and writes the run's end marker (best effort: a dead run goes stale). */
  stop(): Promise<void>;
}

/** Writes a heartbeat now and every HEARTBEAT_MS until stopped. */
export async function startHeartbeat(store: Store, snapshotId: string, options: CallOptions & { intervalMs?: number; onError?: (err: unknown) => void } = {}): Promise<Heartbeat> {
  await beat(store, snapshotId, Date.now(), options);
  // Ask the store when that was: prunes compare heartbeats with notices in store time.
  let started = Date.now();
  for await (const info of store.list(`runs/${snapshotId}/`, options)) started = Math.min(started, info.mtime.getTime());
  let lastOk = Date.now();
  const timer = setInterval(() => {
    beat(store, snapshotId, Date.now(), options).then(
      () => (lastOk = Date.now()),
      (err: unknown) => options.onError?.(err),
    );
  }, options.intervalMs ?? HEARTBEAT_MS);
  timer.unref();
  return {
    started,
    get lastOk() {
      return lastOk;
    },
    async stop() {
      clearInterval(timer);
      await endRun(store, snapshotId).catch((err: unknown) => options.onError?.(err));
    },
  };
}

/** Blobs announced for deletion or deleted by prunes, as notices record them. */
export async function doomedBlobs(store: Store, options: CallOptions & { since?: number } = {}): Promise<Set<string>> {
  const doomed = new Set<string>();
  for (const prefix of [PENDING_PREFIX, DONE_PREFIX]) {
    for (const n of await listNotices(store, prefix, options)) for (const b of n.blobs) doomed.add(b);
  }
  return doomed;
}

/**
 * Makes the catalog agree with the repository before a backup deduplicates against it: forgets
 * blobs a prune announced or deleted, and blobs the store does not hold with the size they were
 * stored with (deleted by hand, cut short by a full disk, an older bucket restored). Their
 * chunks are then packed and uploaded again instead of referenced. One LIST of blobs/ per run.
 * Returns how many blobs it forgot.
 */
export async function syncCatalog(catalog: Catalog, store: Store, options: CallOptions = {}): Promise<number> {
  const doomed = await doomedBlobs(store, options);
  const listed = new Map<string, number>();
  for await (const info of store.list("blobs/", options)) {
    const name = blobNameOfKey(info.key);
    if (name) listed.set(name, info.size);
  }
  const stale: string[] = [];
  for (const [name, size] of catalog.blobSizes()) if (doomed.has(name) || listed.get(name) !== size) stale.push(name);
  return stale.length > 0 ? catalog.forgetBlobs(stale) : 0;
}

/**
 * Refuses to commit a snapshot that references a blob a prune announced after this backup
 * started (the prune could not know of this run if its heartbeats went stale). The catalog
 * forgets those blobs, so the next run uploads their chunks again.
 */
export async function assertNotDoomed(catalog: Catalog, store: Store, blobs: readonly string[], since: number, options: CallOptions = {}): Promise<void> {
  const doomed = await doomedBlobs(store, { ...options, since: since - 60_000 });
  const hit = blobs.filter((b) => doomed.has(b));
  if (hit.length === 0) return;
  catalog.forgetBlobs(hit);
  throw new IntegrityError(
    `${store.location} blobs/`,
    `a prune announced deletion of ${hit.length} blob(s) this snapshot needs while the backup ran; nothing was committed, run the backup again`,
  );
}

/** Longest a backup may go without an accepted heartbeat and still commit (prunes see it as dead at 1 h). */
export const HEARTBEAT_STALE_MS = 30 * 60_000;

/** Refuses to commit when the heartbeats stopped reaching the store: prunes may think this run dead. */
export function assertHeartbeatFresh(hb: Heartbeat, store: Store, now = Date.now()): void {
  if (now - hb.lastOk <= HEARTBEAT_STALE_MS) return;
  throw new IntegrityError(
    `${store.location} runs/`,
    `no heartbeat reached the store for ${Math.round((now - hb.lastOk) / 60_000)} minutes; a prune may have taken this backup for dead, so nothing was committed`,
  );
}
