import type { BlobName } from "../model/ids.js";

// Where blobs live in the repository (see model/ids.ts for what their names mean).

/** `blobs/ab/cd/abcd…`: two levels of fan-out keep directory stores and listings fast. */
export function blobKey(name: string): string {
  return `blobs/${name.slice(0, 2)}/${name.slice(2, 4)}/${name}`;
}

const BLOB_KEY = /^blobs\/([0-9a-f]{2})\/([0-9a-f]{2})\/([0-9a-f]{64})$/;

/** The blob name of a key under `blobs/`, or undefined for anything else. */
export function blobNameOfKey(key: string): BlobName | undefined {
  const m = BLOB_KEY.exec(key);
  if (!m || !m[3]?.startsWith(`${m[1]}${m[2]}`)) return undefined;
  return m[3] as BlobName;
}
