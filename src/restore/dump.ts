import { getMaxListeners, once, setMaxListeners } from "node:events";
import type { Writable } from "node:stream";
import type { X25519Identity } from "../crypto/keys.js";
import { IntegrityError } from "../errors.js";
import type { Repository } from "../repo/repository.js";
import { frameChunks } from "../pack/frame.js";
import type { BlobReader } from "../pack/reader.js";
import { displayPath } from "../model/path-bytes.js";
import type { EntryRow, FileChunk, SnapshotReader } from "../snapshot/read.js";
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
  // The next chunks are fetched and checked while earlier ones are written (a window of
  // READ_AHEAD chunks or bytes, whichever is reached first): one ranged GET at a time left the
  // link idle while a chunk was decompressed and written. Small chunks share a frame, and a
  // file may repeat a chunk: the last frame is kept, so each is fetched once in a row instead
  // of once per chunk (38,800 GETs for a 10 MB file at 256 B).
  const chunks = o.snapshot.chunksOf(entry.id);
  // Each read in flight listens on the signal: past Node's default of 10 it warns on stderr.
  if (o.signal) setMaxListeners(Math.max(getMaxListeners(o.signal), 8 * READ_AHEAD.chunks), o.signal);
  const ahead: { loc: FileChunk; data: Promise<Buffer> }[] = [];
  let aheadBytes = 0;
  let last: { blob: string; offset: number; frame: Promise<Buffer> } | undefined;
  let chunk: { id: string; data: Promise<Buffer> } | undefined;
  const fill = () => {
    while (ahead.length < READ_AHEAD.chunks && (ahead.length === 0 || aheadBytes < READ_AHEAD.bytes)) {
      const next = chunks.next();
      if (next.done) return;
      const loc = next.value;
      if (last?.blob !== loc.blob || last.offset !== loc.offset) last = { blob: loc.blob, offset: loc.offset, frame: o.reader.readFrame(loc, { signal: o.signal }) };
      if (chunk?.id !== loc.id) {
        const frame = last.frame;
        chunk = { id: loc.id, data: frame.then(async (f) => (await frameChunks(f, [loc], o.repo.blobObject(loc.blob)))[0]!) };
        // Awaited in turn below; a failure ahead must not surface as an unhandled rejection first.
        chunk.data.catch(() => {});
      }
      ahead.push({ loc, data: chunk.data });
      aheadBytes += loc.rawLength;
    }
  };
  let written = 0;
  try {
    for (fill(); ahead.length > 0; fill()) {
      const { loc, data: pending } = ahead.shift()!;
      aheadBytes -= loc.rawLength;
      await pace.tick();
      await zeros(loc.fileOffset - written);
      const data = await pending;
      if (loc.fileOffset + data.length > size) {
        throw new IntegrityError(o.snapshot.object, `${displayPath(entry.path)}: chunk ${loc.id} holds ${data.length} bytes, which end past the recorded size ${size}`);
      }
      await write(data);
      written = loc.fileOffset + data.length;
    }
  } finally {
    chunks.return(undefined);
  }
  await zeros(size - written);
  return size;
}

/**
 * How far a dump reads ahead of what it writes. 16 chunks / 32 MiB made a 10 GiB dump peak at
 * 245 MiB RSS (181 MiB without reading ahead), just over the 256 MB.
 */
const READ_AHEAD = { chunks: 8, bytes: 8 << 20 };

const ZEROS = new Uint8Array(1 << 20);
