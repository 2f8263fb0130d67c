import { once } from "node:events";
import type { Writable } from "node:stream";
import type { X25519Identity } from "../crypto/keys.js";
import { IntegrityError } from "../errors.js";
import type { Repository } from "../repo/repository.js";
import { frameChunks } from "../pack/frame.js";
import { displayPath } from "../model/path-bytes.js";
import type { SnapshotReader } from "../snapshot/read.js";
import { Pace } from "../util/pace.js";

// One file of a snapshot written to a stream in file order (`fetch … -`, like `restic dump`).
// Restoring to disk places chunks in blob order; a stream cannot seek, so here each chunk is
// read by ranged GETs in the order the file needs it, and holes are written as zeros. Every
// chunk is checked against its id before a byte of it is written.

export interface DumpOptions {
  repo: Repository;
  identities: readonly X25519Identity[];
  snapshot: SnapshotReader;
  /** Snapshot path of a regular file. */
  path: string;
  out: Writable;
  signal?: AbortSignal;
}

/** Writes the file's bytes to `out`, holes as zeros; returns how many. */
export async function dumpFile(o: DumpOptions): Promise<number> {
  const entry = o.snapshot.entry(o.path);
  if (entry?.type !== "file") throw new IntegrityError(o.snapshot.object, `${displayPath(o.path)} is not a regular file in the snapshot`);
  const size = Number(entry.size);
  // Checked before a byte is written: a stream cannot take back what it has sent. What restore
  // refuses for this entry, and chunks out of order (a stream cannot go back to write them).
  for (const f of o.snapshot.flaws(o.path)) if (f.id === entry.id) throw f.error;
  const reader = o.repo.blobReader(o.identities);
  const pace = new Pace(o.signal, "dump-chunks");
  let end = 0;
  let placed = 0;
  for (const loc of o.snapshot.chunksOf(entry.id)) {
    await pace.tick();
    if (loc.fileOffset < end || loc.fileOffset + loc.rawLength > size) {
      throw new IntegrityError(o.snapshot.object, `${displayPath(o.path)}: chunk ${loc.id} at byte ${loc.fileOffset} overlaps another or ends past the recorded size ${size}`);
    }
    end = loc.fileOffset + loc.rawLength;
    placed++;
  }
  // chunksOf gives only chunks with a location: one without would stream as a hole.
  const refs = o.snapshot.fileInfo(entry.id).chunks;
  if (placed < refs) {
    throw new IntegrityError(o.snapshot.object, `${displayPath(o.path)}: ${refs - placed} of its ${refs} chunk references have no blob location`);
  }
  const write = async (data: Uint8Array) => {
    if (!o.out.write(data)) await once(o.out, "drain", { signal: o.signal });
  };
  /** A hole, as zeros, in bounded pieces. */
  const zeros = async (n: number) => {
    for (let left = n; left > 0; left -= ZEROS.length) {
      await pace.tick();
      await write(left < ZEROS.length ? ZEROS.subarray(0, left) : ZEROS);
    }
  };
  // Small chunks share a frame, and a file may repeat a chunk: the last frame is kept, so each
  // is fetched once in a row instead of once per chunk (38,800 GETs for a 10 MB file at 256 B).
  let last: { blob: string; offset: number; frame: Promise<Buffer> } | undefined;
  let chunk: { id: string; data: Buffer } | undefined;
  let written = 0;
  for (const loc of o.snapshot.chunksOf(entry.id)) {
    await pace.tick();
    await zeros(loc.fileOffset - written);
    if (last?.blob !== loc.blob || last.offset !== loc.offset) last = { blob: loc.blob, offset: loc.offset, frame: reader.readFrame(loc, { signal: o.signal }) };
    if (chunk?.id !== loc.id) chunk = { id: loc.id, data: (await frameChunks(await last.frame, [loc], o.repo.blobObject(loc.blob)))[0]! };
    await write(chunk.data);
    written = loc.fileOffset + chunk.data.length;
  }
  await zeros(size - written);
  return size;
}

const ZEROS = new Uint8Array(1 << 20);
