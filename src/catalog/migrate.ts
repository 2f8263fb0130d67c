import type Database from "better-sqlite3";
import { packChunks, type ChunkRef } from "./codec.js";

// Upgrades an existing index in place, one version at a time, each step in one transaction (a
// crash leaves the older version, which the next open upgrades again). A version this code does
// not know is left alone: Catalog refuses it with a message.

export function migrate(db: Database.Database, latest: number): void {
  const hasState = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'state'").get() !== undefined;
  if (!hasState) return;
  const version = () => Number(db.prepare("SELECT value FROM state WHERE key = 'catalog_version'").pluck().get());
  const steps: Record<number, () => void> = { 4: () => to5(db), 5: () => to6(db) };
  for (let v = version(); v < latest && steps[v]; v = version()) {
    db.transaction(() => {
      steps[v]!();
      db.prepare("UPDATE state SET value = ? WHERE key = 'catalog_version'").run(String(v + 1));
    })();
  }
}

/**
 * Version 4 → 5 adds blobs.recipients. Which keys the old blobs were sealed to is unknown (an
 * age header does not name its recipients), so they get '' and match no run: the first
 * backup after the upgrade uploads everything once, rather than risk a snapshot that the
 * configured key cannot open.
 */
function to5(db: Database.Database): void {
  db.exec("ALTER TABLE blobs ADD COLUMN recipients TEXT NOT NULL DEFAULT ''");
}

/**
 * Version 5 → 6: paths become BLOBs (a version 5 path is valid UTF-8: that walker skipped every
 * other name, so its bytes are its text's), chunk lists gain offsets and lengths (version 5
 * placed chunks end to end, lengths come from the chunk rows), and entries gain nlink, rdev and
 * xattrs. Xattrs were never read: NULL makes the next backup read them, but not the content.
 */
function to6(db: Database.Database): void {
  db.exec(`
    ALTER TABLE entries RENAME TO entries_v5;
    CREATE TABLE entries (
      path BLOB PRIMARY KEY, type TEXT NOT NULL, mode INTEGER NOT NULL, uid INTEGER NOT NULL,
      gid INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL,
      inode INTEGER NOT NULL, dev INTEGER NOT NULL, nlink INTEGER NOT NULL DEFAULT 1, rdev INTEGER,
      link_target BLOB, chunks BLOB, xattrs BLOB, verified_epoch INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID;
    INSERT INTO entries(path, type, mode, uid, gid, size, mtime_ns, ctime_ns, inode, dev, link_target, verified_epoch)
      SELECT CAST(path AS BLOB), type, mode, uid, gid, size, mtime_ns, ctime_ns, inode, dev, CAST(link_target AS BLOB), verified_epoch
      FROM entries_v5;
  `);
  const rawLength = db.prepare("SELECT raw_length FROM chunks WHERE hash = ?").pluck();
  const setChunks = db.prepare("UPDATE entries SET chunks = ? WHERE path = CAST(? AS BLOB)");
  // Pages, not an open cursor: the connection cannot write while a statement iterates.
  const page = db.prepare("SELECT path, chunks FROM entries_v5 WHERE chunks IS NOT NULL AND path > ? ORDER BY path LIMIT 5000").raw();
  for (let rows = page.all("") as [string, Buffer][]; rows.length > 0; rows = page.all(rows[rows.length - 1]![0]) as [string, Buffer][]) {
    for (const [path, hashes] of rows) convert(path, hashes);
  }
  db.exec("DROP TABLE entries_v5");

  function convert(path: string, hashes: Buffer): void {
    const refs: ChunkRef[] = [];
    let offset = 0;
    for (let at = 0; at + 32 <= hashes.length; at += 32) {
      const hash = hashes.subarray(at, at + 32);
      const length = rawLength.get(hash) as number | undefined;
      // A chunk no longer known: the file is read again, as version 5 would have done.
      if (length === undefined) break;
      refs.push({ hash, offset, length });
      offset += length;
    }
    if (refs.length * 32 === hashes.length) setChunks.run(packChunks(refs), path);
  }
}
