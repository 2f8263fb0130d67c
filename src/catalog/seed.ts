import { IntegrityError } from "../errors.js";
import { SEEDED_INODE, type Catalog } from "./db.js";

// A catalog seed: what a source host's local index needs to deduplicate against what its
// repository already holds, written by `vaultik export-catalog` on the key-holding machine from
// the host's latest snapshot and read by `vaultik import-catalog` on the host (docs/FORMAT.md
// §5.1). It is JSON lines (one record per line, the first a header, the last an end record that
// proves the file whole); compression is the caller's business. It holds no secret and no file
// content, only names and hashes, but that is sensitive metadata: every backed-up path.

export const SEED_KIND = "vaultik-catalog-seed";
export const SEED_VERSION = 1;

export interface SeedHeader {
  kind: typeof SEED_KIND;
  version: number;
  host: string;
  /** The snapshot the seed was taken from. */
  snapshot: string;
  /** recipientSetId of the keys every blob in the seed is sealed to. */
  recipients: string;
  created: string;
}

export type SeedRecord =
  | { t: "blob"; name: string; size: number; headerLength: number }
  | { t: "chunk"; id: string; blob: string; offset: number; length: number; rawOffset: number; rawLength: number }
  | { t: "file"; path: string; mode: number; uid: number; gid: number; size: number; mtimeNs: string; chunks: string[] };

export interface SeedEnd {
  t: "end";
  blobs: number;
  chunks: number;
  files: number;
}

/** The seed as text lines: the header, `records`, and an end record counting them. */
export async function* seedLines(header: Omit<SeedHeader, "kind" | "version">, records: AsyncIterable<SeedRecord> | Iterable<SeedRecord>): AsyncGenerator<string> {
  yield `${JSON.stringify({ kind: SEED_KIND, version: SEED_VERSION, ...header })}\n`;
  const end: SeedEnd = { t: "end", blobs: 0, chunks: 0, files: 0 };
  for await (const r of records) {
    end[r.t === "blob" ? "blobs" : r.t === "chunk" ? "chunks" : "files"]++;
    yield `${JSON.stringify(r)}\n`;
  }
  yield `${JSON.stringify(end)}\n`;
}


export interface ImportResult {
  blobs: number;
  chunks: number;
  files: number;
  /** Blobs the repository does not list with the seed's size, and the entries that needed them. */
  droppedBlobs: number;
  droppedChunks: number;
  droppedFiles: number;
}

const HEX64 = /^[0-9a-f]{64}$/;
/** Bounds what a reader holds at once; a file line costs 67 bytes a chunk. */
const MAX_LINE = 64 << 20;
/** Files with more chunks (64 GiB at the default 64 KiB chunks) are left out of a seed. */
export const MAX_SEED_FILE_CHUNKS = 900_000;

/**
 * Reads a seed's lines into `catalog` in one transaction (a seed cut short or malformed leaves
 * nothing behind). Blobs not in `listed` with the same size are dropped, with their chunks and
 * the files that use them. `recipients` is the set the host seals to; a seed for another set is
 * refused by `onHeader` (the caller's check, before anything is written).
 */
export async function importSeed(
  catalog: Catalog,
  lines: AsyncIterable<string>,
  o: { seed: string; listed: ReadonlyMap<string, number>; onHeader: (h: SeedHeader) => void },
): Promise<ImportResult> {
  const bad = (why: string) => new IntegrityError(o.seed, `not a whole vaultik catalog seed: ${why}`);
  const db = catalog.db;
  const insertBlob = db.prepare("INSERT INTO blobs(name, size, header_length, stored_at, recipients) VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING");
  const blobId = db.prepare("SELECT id FROM blobs WHERE name = ?").pluck();
  const insertChunk = db.prepare("INSERT OR IGNORE INTO chunks(hash, blob_id, offset, length, raw_offset, raw_length) VALUES (?, ?, ?, ?, ?, ?)");
  const hasChunk = db.prepare("SELECT 1 FROM chunks WHERE hash = ?").pluck();
  const insertFile = db.prepare(
    "INSERT OR IGNORE INTO entries(path, type, mode, uid, gid, size, mtime_ns, ctime_ns, inode, dev, link_target, chunks) " +
      "VALUES (?, 'file', ?, ?, ?, ?, ?, -1, ?, -1, NULL, ?)",
  );
  const result: ImportResult = { blobs: 0, chunks: 0, files: 0, droppedBlobs: 0, droppedChunks: 0, droppedFiles: 0 };
  let header: SeedHeader | undefined;
  let end: SeedEnd | undefined;
  const seen = { blobs: 0, chunks: 0, files: 0 };
  const ids = new Map<string, number | null>();
  const now = Date.now();
  db.exec("BEGIN IMMEDIATE");
  try {
    let n = 0;
    for await (const line of lines) {
      n++;
      if (end) throw bad(`line ${n} follows the end record`);
      if (line.length > MAX_LINE) throw bad(`line ${n} is longer than ${MAX_LINE} characters`);
      let v: Record<string, unknown>;
      try {
        v = JSON.parse(line) as Record<string, unknown>;
      } catch {
        throw bad(`line ${n} is not JSON`);
      }
      if (typeof v !== "object" || v === null) throw bad(`line ${n} is not an object`);
      if (!header) {
        if (v["kind"] !== SEED_KIND) throw bad("the first line is not a seed header");
        if (v["version"] !== SEED_VERSION) throw new IntegrityError(o.seed, `catalog seed version ${String(v["version"])}, this vaultik reads ${SEED_VERSION}`);
        for (const k of ["host", "snapshot", "recipients", "created"]) if (typeof v[k] !== "string") throw bad(`header field ${k} missing`);
        header = v as unknown as SeedHeader;
        o.onHeader(header);
        continue;
      }
      const t = v["t"];
      if (t === "blob") {
        const name = str(v, "name", HEX64, bad, n);
        const size = int(v, "size", bad, n);
        const headerLength = int(v, "headerLength", bad, n);
        seen.blobs++;
        if (o.listed.get(name) !== size) {
          ids.set(name, null);
          result.droppedBlobs++;
          continue;
        }
        if (insertBlob.run(name, size, headerLength, now, header.recipients).changes > 0) result.blobs++;
        ids.set(name, blobId.get(name) as number);
      } else if (t === "chunk") {
        const id = str(v, "id", HEX64, bad, n);
        const blob = str(v, "blob", HEX64, bad, n);
        const fields = (["offset", "length", "rawOffset", "rawLength"] as const).map((k) => int(v, k, bad, n));
        seen.chunks++;
        const blobRow = ids.get(blob);
        if (blobRow === undefined) throw bad(`line ${n}: chunk in blob ${blob}, which no earlier line names`);
        if (blobRow === null) {
          result.droppedChunks++;
          continue;
        }
        if (insertChunk.run(Buffer.from(id, "hex"), blobRow, ...fields).changes > 0) result.chunks++;
      } else if (t === "file") {
        const path = str(v, "path", /^\/./, bad, n);
        const [mode, uid, gid, size] = (["mode", "uid", "gid", "size"] as const).map((k) => int(v, k, bad, n));
        const mtimeNs = str(v, "mtimeNs", /^-?\d{1,20}$/, bad, n);
        const list = v["chunks"];
        if (!Array.isArray(list) || !list.every((c) => typeof c === "string" && HEX64.test(c))) throw bad(`line ${n}: chunks is not a list of chunk ids`);
        seen.files++;
        const hashes = (list as string[]).map((c) => Buffer.from(c, "hex"));
        // A file whose chunks are not all stored is left out: the backup reads it as new. The
        // seed knows size and mtime only (a snapshot records no ctime, inode or device): the
        // row gets SEEDED_INODE, and its first backup trusts those two (Catalog.lookupFile).
        if (!hashes.every((h) => hasChunk.get(h) !== undefined)) {
          result.droppedFiles++;
          continue;
        }
        if (insertFile.run(path, mode, uid, gid, size, BigInt(mtimeNs), SEEDED_INODE, Buffer.concat(hashes)).changes > 0) result.files++;
      } else if (t === "end") {
        end = v as unknown as SeedEnd;
        if (end.blobs !== seen.blobs || end.chunks !== seen.chunks || end.files !== seen.files) {
          throw bad(`the end record counts ${end.blobs}/${end.chunks}/${end.files} blobs/chunks/files, the seed holds ${seen.blobs}/${seen.chunks}/${seen.files}`);
        }
      } else throw bad(`line ${n}: unknown record ${JSON.stringify(t)}`);
    }
    if (!header) throw bad("it is empty");
    if (!end) throw bad("it has no end record (cut short?)");
    db.exec("COMMIT");
    return result;
  } catch (err) {
    if (db.inTransaction) db.exec("ROLLBACK");
    throw err;
  }
}

function str(v: Record<string, unknown>, k: string, shape: RegExp, bad: (why: string) => Error, n: number): string {
  const s = v[k];
  if (typeof s !== "string" || !shape.test(s)) throw bad(`line ${n}: ${k} is missing or malformed`);
  return s;
}

function int(v: Record<string, unknown>, k: string, bad: (why: string) => Error, n: number): number {
  const x = v[k];
  if (typeof x !== "number" || !Number.isSafeInteger(x) || x < 0) throw bad(`line ${n}: ${k} is not a non-negative integer`);
  return x;
}

/** Splits a byte stream into lines (without their "\n"), refusing one longer than the seed allows. */
export async function* splitLines(chunks: AsyncIterable<Uint8Array>, seed: string): AsyncGenerator<string> {
  let rest = "";
  const decoder = new TextDecoder("utf-8", { fatal: true });
  try {
    for await (const chunk of chunks) {
      rest += decoder.decode(chunk, { stream: true });
      let start = 0;
      for (let nl = rest.indexOf("\n"); nl >= 0; nl = rest.indexOf("\n", start)) {
        yield rest.slice(start, nl);
        start = nl + 1;
      }
      rest = rest.slice(start);
      if (rest.length > MAX_LINE) throw new IntegrityError(seed, `not a whole vaultik catalog seed: a line is longer than ${MAX_LINE} characters`);
    }
    rest += decoder.decode();
  } catch (err) {
    if (err instanceof TypeError) throw new IntegrityError(seed, "not a whole vaultik catalog seed: not UTF-8 text", { cause: err });
    throw err;
  }
  if (rest !== "") yield rest;
}
