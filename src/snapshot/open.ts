import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { X25519Identity } from "../crypto/keys.js";
import type { Repository, SnapshotObject } from "../repo/repository.js";
import { SnapshotReader } from "./read.js";

/**
 * Downloads and opens a snapshot database in a private temp directory, runs `fn`, and removes
 * it whatever happens. The decrypted database is metadata on the recovery machine only.
 */
export async function withSnapshot<T>(
  repo: Repository,
  snapshot: SnapshotObject,
  identities: readonly X25519Identity[],
  fn: (reader: SnapshotReader) => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "vaultik-snap-"));
  let reader: SnapshotReader | undefined;
  try {
    const path = join(dir, "snapshot.sqlite");
    await repo.getSnapshot(snapshot, identities, path, { signal });
    reader = new SnapshotReader(path, snapshot.key);
    return await fn(reader);
  } finally {
    reader?.close();
    await rm(dir, { recursive: true, force: true });
  }
}
