import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Catalog } from "../../src/catalog/db.js";
import { parseRecipient } from "../../src/crypto/keys.js";
import { newSnapshotId } from "../../src/model/snapshot-id.js";
import { Repository } from "../../src/repo/repository.js";
import { SnapshotBuilder } from "../../src/snapshot/build.js";
import type { SnapshotEntry } from "../../src/snapshot/schema.js";

// A format-2 snapshot database of entries only (no content chunks, so no blobs), encrypted to
// the public key and stored in `repo`: what the browsing commands (ls, find) read, made in
// milliseconds for tests and in seconds for the 100 x 50k bench.

export interface CraftedSnapshot {
  repo: Repository;
  recipient: string;
  host: string;
  time: Date;
  sourceDirs?: string[];
}

/** Stores the snapshot and returns its id. `linkOf` makes an entry a hard link to an earlier path. */
export async function craftEntries(s: CraftedSnapshot, entries: Iterable<SnapshotEntry & { linkOf?: string }>): Promise<string> {
  const id = newSnapshotId(s.time, s.host);
  const work = await mkdtemp(join(tmpdir(), "vaultik-craft-"));
  try {
    const db = join(work, "snapshot.sqlite");
    const builder = new SnapshotBuilder(db, {
      id, host: s.host, time: s.time.toISOString(), sourceDirs: s.sourceDirs ?? ["/"], vaultikVersion: "0",
      chunker: "fastcdc-2016", chunkSize: 1 << 20, chunkHash: "sha256", blobHash: "sha256", compression: "zstd",
    });
    const ids = new Map<string, number>();
    for (const { linkOf, ...e } of entries) {
      const n = builder.add(e, [], linkOf === undefined ? undefined : ids.get(linkOf));
      if (e.type === "file") ids.set(e.path, n);
    }
    const catalog = new Catalog(join(work, "index.sqlite"));
    try {
      builder.finish(catalog);
    } finally {
      catalog.close();
    }
    await s.repo.putSnapshot(id, db, [parseRecipient(s.recipient)]);
    return id;
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}
