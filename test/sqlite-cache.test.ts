import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { Catalog } from "../src/catalog/db.js";
import { openSqlite, SQLITE_CACHE_KIB } from "../src/catalog/sqlite.js";

// better-sqlite3 compiles SQLite with a 16 MB page cache for every connection and every
// attached file; a backup holds several. These check that ours are the size we chose, on the
// connection and on a file attached to it, where SQLite would otherwise use the compiled-in one.

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("SQLite page caches", () => {
  it("the catalog's connection and a file shared into another connection use SQLITE_CACHE_KIB, not the compiled-in 16 MB", () => {
    const dir = mkdtempSync(join(tmpdir(), "vaultik-sqlite-cache-"));
    dirs.push(dir);
    const catalog = new Catalog(join(dir, "index.sqlite"));
    const other = openSqlite(join(dir, "other.sqlite"));
    try {
      expect(SQLITE_CACHE_KIB).toBeLessThan(16000);
      expect(catalog.db.pragma("cache_size", { simple: true })).toBe(-SQLITE_CACHE_KIB);
      expect(other.pragma("cache_size", { simple: true })).toBe(-SQLITE_CACHE_KIB);
      const view = catalog.shareChunkLocations(other);
      try {
        const attached = (other.pragma("database_list") as { name: string }[]).map((d) => d.name).filter((n) => n !== "main" && n !== "temp");
        expect(attached.length).toBe(1);
        expect(other.pragma(`${attached[0]}.cache_size`, { simple: true })).toBe(-SQLITE_CACHE_KIB);
        expect(other.pragma("temp.cache_size", { simple: true })).toBe(-SQLITE_CACHE_KIB);
      } finally {
        view.close();
      }
    } finally {
      other.close();
      catalog.close();
    }
  });
});
