import type { X25519Identity } from "../crypto/keys.js";
import type { Repository, SnapshotObject } from "../repo/repository.js";
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
