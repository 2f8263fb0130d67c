import type { X25519Identity } from "../crypto/keys.js";
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

/** Blobs referenced by `snapshots` (live), and the snapshots that were read (liveFrom). */
export async function liveBlobs(
  repo: Repository,
  snapshots: readonly SnapshotObject[],
  identities: readonly X25519Identity[],
  signal?: AbortSignal,
): Promise<{ live: Set<string>; liveFrom: Set<string> }> {
  const live = new Set<string>();
  const liveFrom = new Set<string>();
  const pace = new Pace(signal, "blobs-listed");
  for (const s of snapshots) {
    for (const name of await referencedBlobs(repo, s, identities, signal)) {
      await pace.tick();
      live.add(name);
    }
    liveFrom.add(s.id);
  }
  return { live, liveFrom };
}
