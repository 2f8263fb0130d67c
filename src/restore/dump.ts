import { once } from "node:events";
import type { Writable } from "node:stream";
import type { X25519Identity } from "../crypto/keys.js";
import { IntegrityError } from "../errors.js";
import type { Repository } from "../repo/repository.js";
import { frameChunks } from "../pack/frame.js";
import type { BlobReader } from "../pack/reader.js";
import { displayPath } from "../model/path-bytes.js";
import type { EntryRow, SnapshotReader } from "../snapshot/read.js";
import { Pace } from "../util/pace.js";

// Files of a snapshot written to a stream in file order (`dump`, `fetch … -`, like `restic dump`).
// Restoring to disk places chunks in blob order; a stream cannot seek, so here each chunk is
// read by ranged GETs in the order the file needs it, and holes are written as zeros. Every
// chunk is checked against its id before a byte of it is written, and no more and no fewer
// bytes than the recorded size are ever written (a tar header has already promised that size).

export interface DumpOptions {
  repo: Repository;
  identities: readonly X25519Identity[];
  snapshot: SnapshotReader;
  /** Snapshot path of a regular file. */
  path: string;
  out: Writable;
  signal?: AbortSignal;
}

/** Where a file's bytes come from: one blob reader for every file of a dump (it caches blob headers). */
export interface ContentSource {
  repo: Repository;
  reader: BlobReader;
  snapshot: SnapshotReader;
  signal?: AbortSignal;
}

/** Writes the file's bytes to `out`, holes as zeros; returns how many. */
export async function dumpFile(o: DumpOptions): Promise<number> {
  const entry = o.snapshot.entry(o.path);
  if (entry?.type !== "file") throw new IntegrityError(o.snapshot.object, `${displayPath(o.path)} is not a regular file in the snapshot`);
  // Checked before a byte is written: a stream cannot take back what it has sent.
  for (const f of o.snapshot.flaws(o.path)) if (f.id === entry.id) throw f.error;
  const source = { repo: o.repo, reader: o.repo.blobReader(o.identities), snapshot: o.snapshot, signal: o.signal };
  checkStreamable(source.snapshot, entry);
  return streamContent(source, entry, writerTo(o.out, o.signal));
}

/** A write function for a Node stream that waits when it is full. */
export function writerTo(out: Writable, signal?: AbortSignal): (data: Uint8Array) => Promise<void> {
  return async (data) => {
    if (!out.write(data)) await once(out, "drain", { signal });
  };
}

/**
 * Throws when a file entry cannot be streamed as recorded: chunks out of order or overlapping (a
 * stream cannot go back to write them), reaching past the recorded size, or without a blob
 * location. (What snapshot.flaws() refuses is the caller's to check.)
 */
export function checkStreamable(snapshot: SnapshotReader, entry: EntryRow): void {
  const size = Number(entry.size);
  let end = 0;
  let placed = 0;
  for (const loc of snapshot.chunksOf(entry.id)) {
    if (loc.fileOffset < end || loc.fileOffset + loc.rawLength > size) {
      throw new IntegrityError(snapshot.object, `${displayPath(entry.path)}: chunk ${loc.id} at byte ${loc.fileOffset} overlaps another or ends past the recorded size ${size}`);
    }
    end = loc.fileOffset + loc.rawLength;
    placed++;
  }
  // chunksOf gives only chunks with a location: one without would stream as a hole.
  const refs = snapshot.fileInfo(entry.id).chunks;
  if (placed < refs) {
    throw new IntegrityError(snapshot.object, `${displayPath(entry.path)}: ${refs - placed} of its ${refs} chunk references have no blob location`);
  }
}

/**
 * Streams a file's content (checkStreamable first) through `write`, holes as zeros; returns
 * how many bytes, always the recorded size: a chunk whose bytes would end past it (a crafted
 * raw length) throws before any of it is written.
 */
export async function streamContent(o: ContentSource, entry: EntryRow, write: (data: Uint8Array) => Promise<void>): Promise<number> {
  const size = Number(entry.size);
  const pace = new Pace(o.signal, "dump-chunks");
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
    if (last?.blob !== loc.blob || last.offset !== loc.offset) last = { blob: loc.blob, offset: loc.offset, frame: o.reader.readFrame(loc, { signal: o.signal }) };
    if (chunk?.id !== loc.id) chunk = { id: loc.id, data: (await frameChunks(await last.frame, [loc], o.repo.blobObject(loc.blob)))[0]! };
    if (loc.fileOffset + chunk.data.length > size) {
      throw new IntegrityError(o.snapshot.object, `${displayPath(entry.path)}: chunk ${loc.id} holds ${chunk.data.length} bytes, which end past the recorded size ${size}`);
    }
    await write(chunk.data);
    written = loc.fileOffset + chunk.data.length;
  }
  await zeros(size - written);
  return size;
}

const ZEROS = new Uint8Array(1 << 20);
