import { createHash } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { expect } from "vitest";
import { parseRecipient } from "../../src/crypto/keys.js";
import { newSnapshotId } from "../../src/model/snapshot-id.js";
import { Repository } from "../../src/repo/repository.js";
import { SNAPSHOT_FORMAT, SNAPSHOT_SCHEMA } from "../../src/snapshot/schema.js";
import { openFsStore } from "../../src/store/fs.js";
import { backupId, type LocalRepo } from "./setup.js";

// Snapshots with a huge number of chunk references, built as a compromised source host would:
// from what it has (its local index, which knows where its chunks are stored, and the public
// key), never with the private key. One real backup stores a small seed chunk; the crafted
// snapshot then lists files made of that chunk repeated.

export interface CraftedFile {
  /** Name below the source directory. */
  name: string;
  /** How many times the seed chunk is referenced. */
  refs: number;
}

export interface Crafted {
  id: string;
  /** The seed chunk's bytes: each crafted file is this, `refs` times. */
  seed: Buffer;
  /** Snapshot path of each crafted file, by name. */
  paths: Map<string, string>;
}

const SEED = Buffer.from("0123456789abcdef-seed-chunk\n");

/** Backs up the seed, then stores a snapshot whose files reference its chunk `refs` times each. */
export async function craftManyRefs(
  r: LocalRepo,
  recipient: string,
  files: readonly CraftedFile[],
  /** Chunk rows no file uses, with made-up ids, all at the seed's location (for loops over chunks). */
  extraChunks = 0,
): Promise<Crafted> {
  await writeFile(join(r.source, "seed.bin"), SEED);
  const seedSnapshot = await backupId(r);
  expect(seedSnapshot).toBeTruthy();
  const catalog = new Database(join(r.dir, "state", "index.sqlite"), { readonly: true });
  const loc = catalog
    .prepare(
      "SELECT c.hash, c.offset, c.length, c.raw_offset, c.raw_length, b.name, b.size, b.header_length " +
        "FROM chunks c JOIN blobs b ON b.id = c.blob_id WHERE c.raw_length = ?",
    )
    .get(SEED.length) as { hash: Buffer; offset: number; length: number; raw_offset: number; raw_length: number; name: string; size: number; header_length: number };
  catalog.close();
  expect(loc, "the seed chunk is in the local index").toBeDefined();

  const dir = await mkdtemp(join(tmpdir(), "vaultik-craft-"));
  try {
    const path = join(dir, "crafted.sqlite");
    const db = new Database(path);
    db.exec(SNAPSHOT_SCHEMA);
    db.function("sha256", (i: number | bigint) => createHash("sha256").update(`extra ${i}`).digest());
    const id = newSnapshotId(new Date(), "crafted");
    const root = r.source.slice(1);
    const paths = new Map<string, string>();
    db.transaction(() => {
      db.prepare("INSERT INTO blobs(id, name, size, header_length) VALUES (1, ?, ?, ?)").run(loc.name, loc.size, loc.header_length);
      db.prepare("INSERT INTO chunks VALUES (?, 1, ?, ?, ?, ?, 'zstd')").run(loc.hash, loc.offset, loc.length, loc.raw_offset, loc.raw_length);
      db.prepare(
        "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < ?) " +
          "INSERT INTO chunks SELECT sha256(i), 1, ?, ?, ?, ?, 'zstd' FROM s WHERE ? > 0",
      ).run(extraChunks, loc.offset, loc.length, loc.raw_offset, loc.raw_length, extraChunks);
      const addFile = db.prepare("INSERT INTO files(path, type, mode, uid, gid, size, mtime_ns) VALUES (CAST(? AS BLOB), 'file', 420, 0, 0, ?, 1700000000000000000)");
      // One statement per file, however many references: SQLite counts them out itself.
      const addRefs = db.prepare(
        "WITH RECURSIVE s(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM s WHERE i + 1 < ?) INSERT INTO file_chunks SELECT ?, i * ?, ? FROM s",
      );
      for (const f of files) {
        const p = `${root}/${f.name}`;
        const { lastInsertRowid } = addFile.run(p, f.refs * SEED.length);
        addRefs.run(f.refs, lastInsertRowid, SEED.length, loc.hash);
        paths.set(f.name, p);
      }
      const bytes = files.reduce((n, f) => n + f.refs * SEED.length, 0);
      const meta: Record<string, unknown> = {
        format: SNAPSHOT_FORMAT, id, host: "crafted", time: new Date().toISOString(), sourceDirs: [r.source], vaultikVersion: "crafted",
        chunker: "fastcdc", chunkSize: 65536, chunkHash: "sha256", blobHash: "sha256", compression: "zstd",
        stats: { files: files.length, dirs: 0, symlinks: 0, bytes, errors: 0, changed: 0 },
      };
      const setMeta = db.prepare("INSERT INTO meta(key, value) VALUES (?, ?)");
      for (const [k, v] of Object.entries(meta)) setMeta.run(k, typeof v === "string" ? v : JSON.stringify(v));
    })();
    db.close();
    await new Repository(openFsStore(r.repo)).putSnapshot(id, path, [parseRecipient(recipient)]);
    return { id, seed: SEED, paths };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
