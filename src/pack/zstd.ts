import { compress, decompress } from "@mongodb-js/zstd";
import { IntegrityError } from "../errors.js";

// Each chunk is its own zstd frame, compressed on the libuv thread pool by the native addon,
// so several chunks compress in parallel with the JavaScript thread. The addon's frames do not
// record their content size, so the chunk's length comes from the metadata and is checked.

export const DEFAULT_LEVEL = 3;

export async function compressFrame(data: Uint8Array, level = DEFAULT_LEVEL): Promise<Buffer> {
  return compress(Buffer.from(data.buffer, data.byteOffset, data.byteLength), level);
}

/** Decompresses one frame and checks it holds at least `minLength` bytes (the metadata's promise). */
export async function decompressFrame(frame: Uint8Array, minLength: number, object: string): Promise<Buffer> {
  let out: Buffer;
  try {
    out = await decompress(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength));
  } catch (cause) {
    throw new IntegrityError(object, "zstd frame does not decompress", { cause });
  }
  if (out.length < minLength) {
    throw new IntegrityError(object, `zstd frame holds ${out.length} bytes, expected at least ${minLength}`);
  }
  return out;
}
