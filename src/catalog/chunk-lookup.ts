import { openSqlite } from "./sqlite.js";

/**
 * A read-only connection to the catalog that answers one question, "is this chunk stored?",
 * for the chunk workers (each has its own, so lookups never cross threads). WAL lets it see
 * what the main thread commits while it writes.
 */
export function openChunkLookup(catalogPath: string): { has(hash: Uint8Array): boolean; close(): void } {
  const db = openSqlite(catalogPath, { readonly: true, fileMustExist: true });
  const has = db.prepare("SELECT 1 FROM chunks WHERE hash = ?").pluck();
  return {
    has: (hash) => has.get(hash) !== undefined,
    close: () => db.close(),
  };
}
