import { createHash } from "node:crypto";

// Names in the repository. Chunk ids hash the plaintext (they never leave the source host or
// the encrypted metadata); blob names hash the ciphertext, so they reveal nothing and let
// S3, `check` and `sha256sum` verify a blob without the key.

export const HASH = "sha256";

export function sha256(data: Uint8Array): Buffer {
  return createHash(HASH).update(data).digest();
}

export function chunkId(plain: Uint8Array): string {
  return sha256(plain).toString("hex");
}

/** `blobs/ab/cd/abcd…`: two levels of fan-out keep directory stores and listings fast. */
export function blobKey(name: string): string {
  return `blobs/${name.slice(0, 2)}/${name.slice(2, 4)}/${name}`;
}

const BLOB_KEY = /^blobs\/([0-9a-f]{2})\/([0-9a-f]{2})\/([0-9a-f]{64})$/;

/** The blob name of a key under `blobs/`, or undefined for anything else. */
export function blobNameOfKey(key: string): string | undefined {
  const m = BLOB_KEY.exec(key);
  if (!m || !m[3]?.startsWith(`${m[1]}${m[2]}`)) return undefined;
  return m[3];
}
