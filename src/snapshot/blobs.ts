import type { X25519Identity } from "../crypto/keys.js";
import { IntegrityError, NoIdentityError, UnreadableSnapshotsError } from "../errors.js";
import type { Repository, SnapshotObject } from "../repo/repository.js";
import { Pace } from "../util/pace.js";
import { withSnapshot } from "./open.js";

/** Names of every blob a snapshot references. */
export function referencedBlobs(
  repo: Repository,
  snapshot: SnapshotObject,
  identities: readonly X25519Identity[],
  signal?: AbortSignal,
): Promise<string[]> {
  return withSnapshot(repo, snapshot, identities, async (r) => r.blobs().map((b) => b.name), signal);
}

/**
 * Blobs referenced by `snapshots` (live), and the snapshots that were read (liveFrom). Every
 * snapshot is tried, so one error lists all that cannot be read (UnreadableSnapshotsError). When
 * the only trouble is that no identity opens some of them, that is a key to give (an older one,
 * after a rotation), so the first NoIdentityError is thrown as is.
 */
export async function liveBlobs(
  repo: Repository,
  snapshots: readonly SnapshotObject[],
  identities: readonly X25519Identity[],
  signal?: AbortSignal,
): Promise<{ live: Set<string>; liveFrom: Set<string> }> {
  const live = new Set<string>();
  const liveFrom = new Set<string>();
  const pace = new Pace(signal, "blobs-listed");
  const unreadable: IntegrityError[] = [];
  const ids: string[] = [];
  for (const s of snapshots) {
    let names: string[];
    try {
      names = await referencedBlobs(repo, s, identities, signal);
    } catch (err) {
      if (!(err instanceof IntegrityError) || signal?.aborted) throw err;
      unreadable.push(err);
      ids.push(s.id);
      continue;
    }
    for (const name of names) {
      await pace.tick();
      live.add(name);
    }
    liveFrom.add(s.id);
  }
  if (unreadable.length > 0 && unreadable.every((e) => e instanceof NoIdentityError)) throw unreadable[0];
  if (unreadable.length > 0) {
    throw new UnreadableSnapshotsError(unreadable.map((e, i) => ({ id: ids[i]!, problem: e.message, wrongKey: e instanceof NoIdentityError })));
  }
  return { live, liveFrom };
}
