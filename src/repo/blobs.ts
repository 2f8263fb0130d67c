import { IntegrityError } from "../errors.js";
import { blobKey } from "../pack/names.js";
import type { SealedBlob } from "../pack/writer.js";
import type { CallOptions, Store } from "../store/store.js";

/**
 * Stores a sealed blob under its content address, with its SHA-256 for the server to verify,
 * then releases the spooled ciphertext. Resolves to false when the blob was already stored
 * (same name, so same bytes): nothing is overwritten. An object already there with another
 * size is a damaged copy (a write cut short by a full disk, once): trusting it would make the
 * catalog reference bytes that cannot be read, so that is an error, not "already stored".
 */
export async function storeBlob(
  store: Pick<Store, "put" | "stat" | "location">,
  blob: SealedBlob,
  options: CallOptions = {},
): Promise<boolean> {
  const key = blobKey(blob.name);
  try {
    if (await store.put(key, blob.body, { ...options, sha256: blob.sha256 })) return true;
  } finally {
    await blob.dispose();
  }
  const there = await store.stat(key, options);
  if (there.size !== blob.size) {
    throw new IntegrityError(
      `${store.location} ${key}`,
      `already stored with ${there.size} bytes where this blob has ${blob.size}: the stored copy is damaged; ` +
        "run `vaultik check` on the recovery machine, then delete that object so the next backup can store it again",
    );
  }
  return false;
}
