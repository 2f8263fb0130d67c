import { once } from "node:events";
import type { Writable } from "node:stream";
import type { X25519Identity } from "../crypto/keys.js";
import { IntegrityError } from "../errors.js";
import type { Repository } from "../repo/repository.js";
import { sizeFlaw, type Placement, type SnapshotReader } from "../snapshot/read.js";

// One file of a snapshot written to a stream in file order (`fetch … -`, like `restic dump`).
// Restoring to disk places chunks in blob order; a stream cannot seek, so here each chunk is
// read by ranged GETs in the order the file needs it. Every chunk is checked against its id
// before a byte of it is written.

export interface DumpOptions {
  repo: Repository;
  identities: readonly X25519Identity[];
  snapshot: SnapshotReader;
  /** Snapshot path of a regular file. */
  path: string;
  out: Writable;
  signal?: AbortSignal;
}

/** Writes the file's bytes to `out`; returns how many. */
export async function dumpFile(o: DumpOptions): Promise<number> {
  const entry = o.snapshot.entry(o.path);
  if (entry?.type !== "file") throw new IntegrityError(o.snapshot.object, `${o.path} is not a regular file in the snapshot`);
  const chunks: Placement[] = [];
  for (const p of o.snapshot.placements(o.path)) if (p.path === o.path) chunks.push(p);
  chunks.sort((a, b) => a.fileOffset - b.fileOffset);
  // Checked before a byte is written: a stream cannot take back what it has sent.
  const held = chunks.reduce((n, c) => n + c.loc.rawLength, 0);
  if (held !== entry.size) throw new IntegrityError(o.snapshot.object, `${JSON.stringify(o.path)}: ${sizeFlaw(entry.size, held)}`);
  const reader = o.repo.blobReader(o.identities);
  let written = 0;
  for (const c of chunks) {
    if (c.fileOffset !== written) throw new IntegrityError(o.snapshot.object, `${o.path}: chunks do not cover byte ${written}`);
    const data = await reader.readChunk(c.loc, { signal: o.signal });
    written += data.length;
    if (!o.out.write(data)) await once(o.out, "drain", { signal: o.signal });
  }
  if (written !== Number(entry.size)) {
    throw new IntegrityError(o.snapshot.object, `${o.path}: ${written} bytes in its chunks, ${entry.size} recorded`);
  }
  return written;
}
