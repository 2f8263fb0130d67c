import Database from "better-sqlite3";

// better-sqlite3 builds SQLite with a 16 MB page cache for every connection and every attached
// file, and a backup holds several at once (the catalog, a pack worker's lookup connection, the
// snapshot being built, the previous snapshot, the files they attach): ~70-110 MB of a 256 MiB
// budget. What misses a smaller cache is read from the kernel's page cache, which costs far less
// than the memory (bench/README.md "SQLite page caches").

/** Page cache per connection and per attached file, in KiB. */
export const SQLITE_CACHE_KIB = 2048;

/** Opens a database with vaultik's cache size (in-memory databases keep every page whatever it is). */
export function openSqlite(path: string, options?: Database.Options): Database.Database {
  const db = new Database(path, options);
  try {
    if (path !== ":memory:") db.pragma(`cache_size = -${SQLITE_CACHE_KIB}`);
    db.pragma(`temp.cache_size = -${SQLITE_CACHE_KIB}`);
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
}

/** ATTACH with vaultik's cache size: an attached file otherwise gets SQLite's compiled-in 16 MB. */
export function attachSqlite(conn: Database.Database, file: string, alias: string): void {
  conn.prepare(`ATTACH DATABASE ? AS ${alias}`).run(file);
  conn.pragma(`${alias}.cache_size = -${SQLITE_CACHE_KIB}`);
}
