import { IntegrityError } from "../errors.js";
import { chunkId } from "../model/ids.js";
import { MAX_CHUNK_SIZE, type ChunkLocation } from "../model/chunk.js";
import { decompressFrame } from "./zstd.js";
import { MAX_BLOCK_SIZE } from "./zstd-frame.js";

// Turning a blob's zstd frame back into its chunks, each checked against its id. Used by the
// blob reader and by a restore's writer threads, which decompress and check frames off the main
// thread.

/**
 * How far a frame's possible output may exceed the end of the chunks asked of it. A shared
 * frame holds other small chunks after them (under 80 KiB in all, see writer.ts), and a bound
 * counts the last compressed block as full (under 128 KiB more): 256 KiB covers both for every
 * frame our writer makes, and keeps a crafted frame to what its metadata declares.
 */
const FRAME_SLACK = 2 * MAX_BLOCK_SIZE;

/** What checking a chunk of a frame needs of its location. */
export type FrameChunk = Pick<ChunkLocation, "id" | "offset" | "rawOffset" | "rawLength">;

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
export async function frameChunksEach(frame: Uint8Array, locs: readonly FrameChunk[], object: string): Promise<(Buffer | IntegrityError)[]> {
  const need = locs.reduce((n, loc) => Math.max(n, loc.rawOffset + loc.rawLength), 0);
  const offset = locs[0]?.offset ?? 0;
  // A crafted location could declare a 4 GiB chunk and a frame to match.
  if (need > MAX_CHUNK_SIZE) {
    throw new IntegrityError(object, `the chunks of the zstd frame at byte ${offset} claim ${need} bytes, more than any chunk can be (${MAX_CHUNK_SIZE})`);
  }
  const raw = await decompressFrame(frame, { min: need, max: need + FRAME_SLACK }, object, offset);
  return locs.map((loc) => chunkOf(raw, loc, object));
}

/** The chunk's bytes inside its decompressed frame if they match its id. */
function chunkOf(frameRaw: Buffer, loc: FrameChunk, object: string): Buffer | IntegrityError {
  if (frameRaw.length < loc.rawOffset + loc.rawLength) {
    return new IntegrityError(object, `zstd frame at offset ${loc.offset} is shorter than chunk ${loc.id.slice(0, 16)}… needs`);
  }
  const data = frameRaw.subarray(loc.rawOffset, loc.rawOffset + loc.rawLength);
  if (chunkId(data) !== loc.id) {
    return new IntegrityError(object, `chunk ${loc.id.slice(0, 16)}… at offset ${loc.offset} does not match its id`);
  }
  return data;
}
