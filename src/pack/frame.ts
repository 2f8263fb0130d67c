import { IntegrityError } from "../errors.js";
import { chunkId } from "./names.js";
import type { ChunkLocation } from "./writer.js";
import { decompressFrame } from "./zstd.js";

// Turning a blob's zstd frame back into its chunks, each checked against its id. Used by the
// blob reader and by a restore's writer threads, which decompress and check frames off the main
// thread.

/** Decompresses `frame` and returns the chunks `locs` (all in this frame), each verified. */
export async function frameChunks(frame: Uint8Array, locs: readonly ChunkLocation[], object: string): Promise<Buffer[]> {
  const need = locs.reduce((n, loc) => Math.max(n, loc.rawOffset + loc.rawLength), 0);
  const raw = await decompressFrame(frame, need, object);
  return locs.map((loc) => chunkOf(raw, loc, object));
}

/** The chunk's bytes inside its decompressed frame, checked against its id. */
function chunkOf(frameRaw: Buffer, loc: ChunkLocation, object: string): Buffer {
  if (frameRaw.length < loc.rawOffset + loc.rawLength) {
    throw new IntegrityError(object, `zstd frame at offset ${loc.offset} is shorter than chunk ${loc.id.slice(0, 16)}… needs`);
  }
  const data = frameRaw.subarray(loc.rawOffset, loc.rawOffset + loc.rawLength);
  if (chunkId(data) !== loc.id) {
    throw new IntegrityError(object, `chunk ${loc.id.slice(0, 16)}… at offset ${loc.offset} does not match its id`);
  }
  return data;
}
