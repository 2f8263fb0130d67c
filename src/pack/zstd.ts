import { compress, decompress } from "@mongodb-js/zstd";
import { IntegrityError } from "../errors.js";
import { frameLabel, frameOutputBound } from "./zstd-frame.js";

// Each chunk is its own zstd frame, compressed on the libuv thread pool by the native addon,
// so several chunks compress in parallel with the JavaScript thread. The addon's frames do not
// record their content size, so the chunk's length comes from the metadata and is checked.

export const DEFAULT_LEVEL = 3;

export async function compressFrame(data: Uint8Array, level = DEFAULT_LEVEL): Promise<Buffer> {
  return compress(Buffer.from(data.buffer, data.byteOffset, data.byteLength), level);
}

/** How much a frame must and may decompress to, from the metadata. */
export interface FrameSize {
  /** The frame must hold at least this many bytes. */
  min: number;
  /** Its blocks must not be able to decode to more: checked before decompressing. */
  max: number;
}

/**
 * Decompresses one frame (exactly one, at plaintext offset `origin` of `object`). A frame whose
 * headers allow more than `size.max` bytes is refused before the addon sees it: the addon has
 * no output limit, so it would expand a bomb in memory first and let us count afterwards.
 */
export async function decompressFrame(frame: Uint8Array, size: FrameSize, object: string, origin: number): Promise<Buffer> {
  const label = frameLabel(undefined, origin);
  const bound = frameOutputBound(frame, object, origin);
  if (bound > size.max) {
    throw new IntegrityError(object, `${label} can decompress to ${bound} bytes, more than the ${size.max} its chunks allow (they declare ${size.min}): refused unread`);
  }
  const out = await decompressBounded(frame, bound, object, label);
  if (out.length < size.min) {
    throw new IntegrityError(object, `${label} holds ${out.length} bytes, expected at least ${size.min}`);
  }
  return out;
}

/**
 * Decompresses frames whose headers were already found to allow at most `bound` bytes
 * (`label` names them in errors).
 */
export async function decompressBounded(frames: Uint8Array, bound: number, object: string, label: string): Promise<Buffer> {
  let out: Buffer;
  try {
    out = await decompress(Buffer.from(frames.buffer, frames.byteOffset, frames.byteLength));
  } catch (cause) {
    throw new IntegrityError(object, `${label} does not decompress`, { cause });
  }
  // The decoder never writes more than the blocks allow; a longer result is a decoder bug.
  if (out.length > bound) {
    throw new IntegrityError(object, `${label} decompressed to ${out.length} bytes, more than its blocks allow (${bound})`);
  }
  return out;
}
