import { join } from "node:path";
import Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { CATALOG_VERSION, Catalog } from "../src/catalog/db.js";
import { recipientSetId } from "../src/catalog/recipients.js";
import { parseRecipient } from "../src/crypto/keys.js";
import { useTempDirs } from "./helpers/temp.js";

// An index written before issue 15 (version 5: TEXT paths, chunk lists as concatenated hashes
// placed end to end) is upgraded in place: no file is read again for it, and what version 5
// never recorded (xattrs) is read at the next backup.

const tempDir = useTempDirs("vaultik-catalog-migrate-");

/** Version 5's schema, as src/catalog/db.ts had it before issue 15. */
const V5 = `
CREATE TABLE blobs (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, size INTEGER NOT NULL, header_length INTEGER NOT NULL,
  stored_at INTEGER NOT NULL, recipients TEXT NOT NULL DEFAULT '');
CREATE TABLE chunks (hash BLOB PRIMARY KEY, blob_id INTEGER NOT NULL REFERENCES blobs(id) ON DELETE CASCADE, offset INTEGER NOT NULL,
  length INTEGER NOT NULL, raw_offset INTEGER NOT NULL, raw_length INTEGER NOT NULL) WITHOUT ROWID;
CREATE INDEX chunks_by_blob ON chunks(blob_id);
CREATE TABLE entries (path TEXT PRIMARY KEY, type TEXT NOT NULL, mode INTEGER NOT NULL, uid INTEGER NOT NULL, gid INTEGER NOT NULL,
  size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, dev INTEGER NOT NULL,
  link_target TEXT, chunks BLOB, verified_epoch INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID;
CREATE TABLE state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
`;

const RECIPIENT = parseRecipient("age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p");
const stamp = { size: 300n, mtimeNs: 5n, ctimeNs: 6n, inode: 7n, dev: 8n };
const hash = (n: number) => Buffer.alloc(32, n);

function writeV5(path: string): void {
  const db = new Database(path);
  try {
    db.exec(V5);
    db.prepare("INSERT INTO state VALUES ('catalog_version', '5')").run();
    db.prepare("INSERT INTO blobs VALUES (1, ?, 1000, 50, 0, ?)").run("aa".repeat(32), recipientSetId([RECIPIENT]));
    const chunk = db.prepare("INSERT INTO chunks VALUES (?, 1, ?, ?, ?, ?)");
    chunk.run(hash(1), 50, 100, 0, 100);
    chunk.run(hash(2), 150, 200, 100, 200);
    const entry = db.prepare("INSERT INTO entries VALUES (?, ?, 420, 0, 0, ?, ?, ?, ?, ?, ?, ?, 0)");
    const s = [stamp.size, stamp.mtimeNs, stamp.ctimeNs, stamp.inode, stamp.dev];
    entry.run("/src/résumé.txt", "file", ...s, null, Buffer.concat([hash(1), hash(2)]));
    // A chunk the index no longer knows: read again, as version 5 would have.
    entry.run("/src/lost", "file", ...s, null, Buffer.concat([hash(1), hash(9)]));
    entry.run("/src/dir", "dir", 0n, 1n, 1n, 9n, 8n, null, null);
    entry.run("/src/link", "symlink", 0n, 1n, 1n, 10n, 8n, "résumé.txt", null);
  } finally {
    db.close();
  }
}

describe("local index version 5 → 6", () => {
  it("keeps every file's chunks (now with offsets), makes paths byte strings, and leaves xattrs to be read", async () => {
    const path = join(await tempDir(), "index.sqlite");
    writeV5(path);
    const catalog = new Catalog(path);
    try {
      catalog.useRecipients(recipientSetId([RECIPIENT]));
      expect(catalog.getState("catalog_version")).toBe(String(CATALOG_VERSION));
      const found = catalog.lookupFile("/src/résumé.txt", stamp);
      expect(found.status).toBe("unchanged");
      if (found.status !== "unchanged") return;
      expect(found.chunks.map((c) => [Buffer.from(c.hash), c.offset, c.length])).toEqual([[hash(1), 0, 100], [hash(2), 100, 200]]);
      expect(found.xattrs, "never read by version 5").toBeUndefined();
      expect(catalog.lookupFile("/src/lost", stamp).status).toBe("changed");
      expect(catalog.entry("/src/link")).toMatchObject({ type: "symlink", linkTarget: "résumé.txt", nlink: 1 });
      expect(catalog.children("/src").sort()).toEqual(["/src/dir", "/src/link", "/src/lost", "/src/résumé.txt"]);
      const types = catalog.db.prepare("SELECT DISTINCT typeof(path) FROM entries").pluck().all();
      expect(types).toEqual(["blob"]);
      // Metadata read now is kept: the next lookup with the same ctime has the xattrs.
      catalog.recordEntries([{ path: "/src/résumé.txt", type: "file", mode: 0o644, uid: 0, gid: 0, stamp, xattrs: [{ name: "user.a", value: Buffer.from("b") }] }]);
      const again = catalog.lookupFile("/src/résumé.txt", stamp);
      expect(again.status === "unchanged" && again.xattrs?.map((x) => [x.name, Buffer.from(x.value).toString()])).toEqual([["user.a", "b"]]);
      // A ctime change alone keeps the content, not the attributes.
      const moved = catalog.lookupFile("/src/résumé.txt", { ...stamp, ctimeNs: 99n });
      expect(moved.status).toBe("unchanged");
      expect(moved.status === "unchanged" && moved.xattrs).toBeUndefined();
    } finally {
      catalog.close();
    }
  });

  it("an index of a version newer than this code is refused, not rewritten", async () => {
    const path = join(await tempDir(), "index.sqlite");
    writeV5(path);
    const db = new Database(path);
    db.prepare("UPDATE state SET value = ? WHERE key = 'catalog_version'").run(String(CATALOG_VERSION + 1));
    db.close();
    expect(() => new Catalog(path)).toThrow(/local index version 7/);
  });
});
