import { createHash } from "node:crypto";

// The identity of a recipient set, recorded with every blob in the local index: a blob is
// reusable only by a run that seals to exactly the same set, since a snapshot must open with
// any one of its own recipients' keys. Order and duplicates do not change what can open a blob.

/** SHA-256 (hex) of the set's X25519 public keys, sorted and deduplicated. */
export function recipientSetId(recipients: readonly { readonly publicKey: Uint8Array }[]): string {
  const keys = [...new Set(recipients.map((r) => Buffer.from(r.publicKey).toString("hex")))].sort();
  return createHash("sha256").update(keys.join("\n")).digest("hex");
}
