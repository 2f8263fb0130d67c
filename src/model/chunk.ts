import type { BlobName, ChunkId } from "./ids.js";

// Where chunks live, as the catalog, the snapshot database, check and restore all speak of it.
// Defined here, below all of them, rather than in the pack writer that first produces it.

/** The only compression a chunk's frame may have (recorded per chunk so the format can grow). */
export const COMPRESSION = "zstd";

/**
 * The largest chunk the chunker cuts (4 × the largest chunk_size). Readers refuse locations
 * that claim more, so crafted metadata cannot make them decompress more.
 */
export const MAX_CHUNK_SIZE = 64 * 1024 * 1024;

/** Where a chunk lives: everything a reader needs besides the key. */
export interface ChunkLocation {
  id: ChunkId;
  blob: BlobName;
  /** Offset of the zstd frame holding the chunk, in the blob's plaintext. */
  offset: number;
  /** Length of that zstd frame. */
  length: number;
  /**
   * Where the chunk starts in the frame's decompressed content: 0 for a frame of its own, more
   * for small chunks that share a frame.
   */
  rawOffset: number;
  /** Length of the chunk itself. */
  rawLength: number;
  compression: typeof COMPRESSION;
}

/** A stored blob as its writer knows it. */
export interface BlobIdentity {
  name: BlobName;
  /** Ciphertext size. */
  size: number;
  /** Length of the age header (the payload nonce follows it). */
  headerLength: number;
}
