import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { X25519Identity } from "../crypto/keys.js";
import { IntegrityError } from "../errors.js";
import type { Repository, SnapshotObject } from "../repo/repository.js";
import { SnapshotReader } from "./read.js";
import type { SnapshotCache } from "./cache.js";

export interface OpenOptions {
  /** Where decrypted snapshot databases are kept between commands; none: a temp copy per call. */
  cache?: SnapshotCache;
}

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
  _options: OpenOptions = {},
): Promise<T> {
  const dir = await mkdtemp(join(tmpdir(), "vaultik-snap-"));
  let reader: SnapshotReader | undefined;
  try {
    const path = join(dir, "snapshot.sqlite");
    await repo.getSnapshot(snapshot, identities, path, { signal });
    reader = new SnapshotReader(path, snapshot.key);
    // The name is what users and retention choose by; the content must be that snapshot.
    // Otherwise a host with put access could copy an old snapshot under a new name and roll
    // `latest` back, or make one id restore another's tree.
    if (reader.meta.id !== snapshot.id) {
      throw new IntegrityError(
        snapshot.key,
        `the object named snapshot ${snapshot.id} holds snapshot ${JSON.stringify(reader.meta.id)}: refusing it (copied or crafted under another name)`,
      );
    }
    return await fn(reader);
  } finally {
    reader?.close();
    await rm(dir, { recursive: true, force: true });
  }
}
