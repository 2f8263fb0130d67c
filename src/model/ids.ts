import { hash } from "node:crypto";

// The names everything else speaks of. Chunk ids hash the plaintext (they never leave the
// source host or the encrypted metadata); blob names hash the ciphertext, so they reveal
// nothing and let S3, `check` and `sha256sum` verify a blob without the key. Branded so that a
// chunk id cannot be passed where a blob name belongs, which both being 64 hex digits invites.

declare const brand: unique symbol;
type Brand<T, B extends string> = T & { readonly [brand]: B };

/** SHA-256 of a chunk's plaintext, 64 lowercase hex digits. */
export type ChunkId = Brand<string, "ChunkId">;
/** SHA-256 of a blob's ciphertext, 64 lowercase hex digits. */
export type BlobName = Brand<string, "BlobName">;

export const HASH = "sha256";

const HEX64 = /^[0-9a-f]{64}$/;

export function sha256(data: Uint8Array): Buffer {
  return hash(HASH, data, "buffer");
}

/** One-shot: half the time of a Hash object per chunk, which a restore of 100k small chunks feels. */
export function chunkId(plain: Uint8Array): ChunkId {
  return hash(HASH, plain, "hex") as ChunkId;
}

/** A blob name read from metadata or a listing, once it has the form of one. */
export function asBlobName(name: string): BlobName | undefined {
  return HEX64.test(name) ? (name as BlobName) : undefined;
}

/** A chunk id read from metadata, once it has the form of one. */
export function asChunkId(id: string): ChunkId | undefined {
  return HEX64.test(id) ? (id as ChunkId) : undefined;
}
