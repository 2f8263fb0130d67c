import { MAX_SEED_FILE_CHUNKS, type SeedRecord } from "../catalog/seed.js";
import { parseHeader } from "../crypto/header.js";
import { IntegrityError, isNotFound } from "../errors.js";
import type { Repository } from "../repo/repository.js";
import { TaskPool } from "../util/pool.js";
import { decodePath } from "../model/path-bytes.js";
import type { SnapshotReader } from "./read.js";
import { openSqlite } from "../catalog/sqlite.js";

// What a catalog seed (catalog/seed.ts) takes from one snapshot database: every blob and chunk
// the snapshot references, and its regular files with their chunk lists. Read through a
// connection of its own, so the snapshot schema's SQL stays in snapshot/.

/**
 * The seed records of the snapshot `reader` has open: blobs, then chunks, then files (the order
 * import-catalog needs). Files that changed while read, and entries outside the snapshot's
 * source directories (command output, which has no file on the host), and files of more chunks
 * than a seed line holds, are left out: the host reads those again.
 */
export function* seedRecords(reader: SnapshotReader): Generator<SeedRecord> {
  const db = openSqlite(reader.path, { readonly: true, fileMustExist: true });
  // better-sqlite3 runs one statement per connection at a time; files and their chunks are two.
  const db2 = openSqlite(reader.path, { readonly: true, fileMustExist: true });
  try {
    for (const b of db.prepare("SELECT name, size, header_length AS headerLength FROM blobs ORDER BY name").iterate() as Iterable<{
      name: string;
      size: number;
      headerLength: number;
    }>) {
      yield { t: "blob", name: b.name, size: b.size, headerLength: b.headerLength };
    }
    const chunks = db.prepare(
      "SELECT lower(hex(c.hash)) AS id, b.name AS blob, c.offset, c.length, c.raw_offset AS rawOffset, c.raw_length AS rawLength " +
        "FROM chunks c JOIN blobs b ON b.id = c.blob_id",
    );
    for (const c of chunks.iterate() as Iterable<{ id: string; blob: string; offset: number; length: number; rawOffset: number; rawLength: number }>) {
      yield { t: "chunk", ...c };
    }
    const roots = reader.meta.sourceDirs.map((d) => d.replace(/^\/+|\/+$/g, ""));
    const inSources = (path: string) => roots.some((r) => r === "" || path === r || path.startsWith(`${r}/`));
    // One pass over file_chunks in file order, merged with the files in id order. A seed's chunk
    // list is contiguous: format 2 files with holes, and hard links (whose chunks are their
    // set's), are left out, and the host reads them again.
    const v2 = reader.meta.format >= 2;
    const files = db
      .prepare(`SELECT id, path, mode, uid, gid, size, mtime_ns AS mtimeNs, status, ${v2 ? "link_id" : "NULL"} AS linkId FROM files WHERE type = 'file' ORDER BY id`)
      .safeIntegers(true);
    const fileChunks = db2
      .prepare(
        v2
          ? "SELECT fc.file_id AS fileId, lower(hex(fc.chunk)) AS chunk, fc.offset, c.raw_length AS length FROM file_chunks fc LEFT JOIN chunks c ON c.hash = fc.chunk ORDER BY fc.file_id, fc.offset"
          : "SELECT file_id AS fileId, lower(hex(chunk)) AS chunk, NULL AS offset, NULL AS length FROM file_chunks ORDER BY file_id, seq",
      )
      .safeIntegers(true);
    const chunkRows = (fileChunks.iterate() as Iterable<{ fileId: bigint; chunk: string; offset: bigint | null; length: bigint | null }>)[Symbol.iterator]();
    let next = chunkRows.next();
    type FileRow = { id: bigint; path: unknown; mode: bigint; uid: bigint; gid: bigint; size: bigint; mtimeNs: bigint; status: string | null; linkId: bigint | null };
    for (const f of files.iterate() as Iterable<FileRow>) {
      const list: string[] = [];
      let end = 0n;
      let contiguous = true;
      while (!next.done && next.value.fileId < f.id) next = chunkRows.next();
      while (!next.done && next.value.fileId === f.id) {
        list.push(next.value.chunk);
        if (v2) {
          contiguous &&= next.value.offset === end && next.value.length !== null;
          end += next.value.length ?? 0n;
        }
        next = chunkRows.next();
      }
      const path = v2 ? decodePath(f.path as Uint8Array) : String(f.path);
      if (v2 && (!contiguous || end !== f.size || f.linkId !== null)) continue;
      if (f.status !== null || !inSources(path) || list.length > MAX_SEED_FILE_CHUNKS) continue;
      yield {
        t: "file",
        path: `/${path}`,
        mode: Number(f.mode),
        uid: Number(f.uid),
        gid: Number(f.gid),
        size: Number(f.size),
        mtimeNs: String(f.mtimeNs),
        chunks: list,
      };
    }
    chunkRows.return?.();
  } finally {
    db.close();
    db2.close();
  }
}

/** Ranged GETs of blob headers at once: each is a few hundred bytes, so latency is the cost. */
const HEADER_READS = 8;

/**
 * The first blob of the snapshot whose age header holds other than `keys` X25519 stanzas (one
 * per recipient), with its count; undefined when all match. An age header does not name its
 * recipients, so this is how far "sealed to these keys" can be checked without their private
 * keys. Blobs the store no longer holds are skipped (import-catalog drops them).
 */
export async function blobSealedToOtherCount(
  repo: Repository,
  reader: SnapshotReader,
  keys: number,
  signal?: AbortSignal,
): Promise<{ blob: string; stanzas: number } | undefined> {
  const db = openSqlite(reader.path, { readonly: true, fileMustExist: true });
  let found: { blob: string; stanzas: number } | undefined;
  const pool = new TaskPool(HEADER_READS);
  try {
    for (const b of db.prepare("SELECT name, header_length AS headerLength FROM blobs ORDER BY name").iterate() as Iterable<{ name: string; headerLength: number }>) {
      if (found) break;
      await pool.run(async () => {
        let head: Buffer;
        try {
          head = await repo.readBlobRange(b.name, { offset: 0, length: b.headerLength }, { signal });
        } catch (err) {
          if (isNotFound(err)) return;
          throw err;
        }
        const object = repo.blobObject(b.name);
        const header = parseHeader(head, object);
        if (!header) throw new IntegrityError(object, `age header longer than the ${b.headerLength} bytes the snapshot records`);
        const stanzas = header.stanzas.filter((st) => st.type === "X25519").length;
        if (stanzas !== keys) found ??= { blob: b.name, stanzas };
      });
    }
    await pool.drain();
  } finally {
    db.close();
  }
  return found;
}
