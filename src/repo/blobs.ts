import { blobKey } from "../pack/names.js";
import type { SealedBlob } from "../pack/writer.js";
import type { CallOptions, Store } from "../store/store.js";

/**
 * Stores a sealed blob under its content address, with its SHA-256 for the server to verify,
 * then releases the spooled ciphertext. Resolves to false when the blob was already stored
 * (same name, so same bytes): nothing is overwritten.
 */
export async function storeBlob(
  store: Pick<Store, "put">,
  blob: SealedBlob,
  options: CallOptions = {},
): Promise<boolean> {
  try {
    return await store.put(blobKey(blob.name), blob.body, { ...options, sha256: blob.sha256 });
  } finally {
    await blob.dispose();
  }
}
