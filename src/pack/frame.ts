import { IntegrityError } from "../errors.js";
import { chunkId } from "../model/ids.js";
import type { ChunkLocation } from "../model/chunk.js";
import { decompressFrame } from "./zstd.js";

// Turning a blob's zstd frame back into its chunks, each checked against its id. Used by the
// blob reader and by a restore's writer threads, which decompress and check frames off the main
// thread.

/** Decompresses `frame` and returns the chunks `locs` (all in this frame), each verified. */
export async function frameChunks(frame: Uint8Array, locs: readonly ChunkLocation[], object: string): Promise<Buffer[]> {
  return (await frameChunksEach(frame, locs, object)).map((c) => {
    if (c instanceof IntegrityError) throw c;
    return c;
  });
}

/**
 * The same, with a chunk that fails its check as its error in place: the other chunks of a
 * shared frame are still good. A frame that does not decompress throws.
 */
export async function frameChunksEach(frame: Uint8Array, locs: readonly ChunkLocation[], object: string): Promise<(Buffer | IntegrityError)[]> {
  const need = locs.reduce((n, loc) => Math.max(n, loc.rawOffset + loc.rawLength), 0);
  const raw = await decompressFrame(frame, need, object);
  return locs.map((loc) => chunkOf(raw, loc, object));
}

/** The chunk's bytes inside its decompressed frame if they match its id. */
function chunkOf(frameRaw: Buffer, loc: ChunkLocation, object: string): Buffer | IntegrityError {
  if (frameRaw.length < loc.rawOffset + loc.rawLength) {
    return new IntegrityError(object, `zstd frame at offset ${loc.offset} is shorter than chunk ${loc.id.slice(0, 16)}… needs`);
  }
  const data = frameRaw.subarray(loc.rawOffset, loc.rawOffset + loc.rawLength);
  if (chunkId(data) !== loc.id) {
    return new IntegrityError(object, `chunk ${loc.id.slice(0, 16)}… at offset ${loc.offset} does not match its id`);
  }
  return data;
}
