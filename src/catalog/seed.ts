import { IntegrityError } from "../errors.js";
import { SEEDED_INODE, type Catalog } from "./db.js";
import { packChunks, type ChunkRef } from "./codec.js";
import { encodePath } from "../model/path-bytes.js";

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
/** Files with more chunks (about 860 GiB at the default 1 MiB chunks) are left out of a seed. */
export const MAX_SEED_FILE_CHUNKS = 900_000;

type Bad = (why: string) => Error;
type Fields = Record<string, unknown>;

/**
 * Reads a seed's lines into `catalog` in one transaction (a seed cut short or malformed leaves
 * nothing behind). Blobs not in `listed` with the same size are dropped, with their chunks and
 * the files that use them. `onHeader` sees the header before any row is read (the caller
 * refuses a seed for other recipients there).
 */
export async function importSeed(
  catalog: Catalog,
  lines: AsyncIterable<string>,
  o: { seed: string; listed: ReadonlyMap<string, number>; onHeader: (h: SeedHeader) => void },
): Promise<ImportResult> {
  const db = catalog.db;
  const rows = new SeedRows(catalog, o.listed);
  db.exec("BEGIN IMMEDIATE");
  try {
    let n = 0;
    let header: SeedHeader | undefined;
    let end: SeedEnd | undefined;
    for await (const line of lines) {
      const bad: Bad = (why) => new IntegrityError(o.seed, `not a whole vaultik catalog seed: line ${n}: ${why}`);
      n++;
      if (end) throw bad("follows the end record");
      const v = parseLine(line, bad);
      if (!header) {
        header = readHeader(v, o.seed, bad);
        o.onHeader(header);
        rows.recipients = header.recipients;
      } else if (v["t"] === "end") end = rows.end(v, bad);
      else rows.add(v, bad);
    }
    if (!header) throw new IntegrityError(o.seed, "not a whole vaultik catalog seed: it is empty");
    if (!end) throw new IntegrityError(o.seed, "not a whole vaultik catalog seed: it has no end record (cut short?)");
    db.exec("COMMIT");
    return rows.result;
  } catch (err) {
    if (db.inTransaction) db.exec("ROLLBACK");
    throw err;
  }
}

function parseLine(line: string, bad: Bad): Fields {
  if (line.length > MAX_LINE) throw bad(`longer than ${MAX_LINE} characters`);
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    throw bad("not JSON");
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) throw bad("not a JSON object");
  return v as Fields;
}

function readHeader(v: Fields, seed: string, bad: Bad): SeedHeader {
  if (v["kind"] !== SEED_KIND) throw bad("not a seed header");
  if (v["version"] !== SEED_VERSION) throw new IntegrityError(seed, `catalog seed version ${String(v["version"])}, this vaultik reads ${SEED_VERSION}`);
  for (const k of ["host", "snapshot", "recipients", "created"]) if (typeof v[k] !== "string") throw bad(`header field ${k} missing`);
  return v as unknown as SeedHeader;
}

/** The rows of one seed as they go into the catalog, and what was kept and dropped. */
class SeedRows {
  readonly result: ImportResult = { blobs: 0, chunks: 0, files: 0, droppedBlobs: 0, droppedChunks: 0, droppedFiles: 0 };
  recipients = "";
  private readonly seen = { blobs: 0, chunks: 0, files: 0 };
  /** Blob name → catalog id, or null when dropped. */
  private readonly ids = new Map<string, number | null>();
  /** Bytes after each blob's header: no chunk of it can lie past them. */
  private readonly payload = new Map<string, number>();
  private readonly now = Date.now();
  private readonly stmts;

  constructor(
    catalog: Catalog,
    private readonly listed: ReadonlyMap<string, number>,
  ) {
    const db = catalog.db;
    this.stmts = {
      insertBlob: db.prepare("INSERT INTO blobs(name, size, header_length, stored_at, recipients) VALUES (?, ?, ?, ?, ?) ON CONFLICT(name) DO NOTHING"),
      blobId: db.prepare("SELECT id FROM blobs WHERE name = ?").pluck(),
      insertChunk: db.prepare("INSERT OR IGNORE INTO chunks(hash, blob_id, offset, length, raw_offset, raw_length) VALUES (?, ?, ?, ?, ?, ?)"),
      rawLength: db.prepare("SELECT raw_length FROM chunks WHERE hash = ?").pluck(),
      insertFile: db.prepare(
        "INSERT OR IGNORE INTO entries(path, type, mode, uid, gid, size, mtime_ns, ctime_ns, inode, dev, link_target, chunks) " +
          "VALUES (?, 'file', ?, ?, ?, ?, ?, -1, ?, -1, NULL, ?)",
      ),
    };
  }

  add(v: Fields, bad: Bad): void {
    if (v["t"] === "blob") this.blob(v, bad);
    else if (v["t"] === "chunk") this.chunk(v, bad);
    else if (v["t"] === "file") this.file(v, bad);
    else throw bad(`unknown record ${JSON.stringify(v["t"])}`);
  }

  private blob(v: Fields, bad: Bad): void {
    const name = str(v, "name", HEX64, bad);
    const size = int(v, "size", bad);
    const headerLength = int(v, "headerLength", bad);
    this.seen.blobs++;
    if (this.listed.get(name) !== size) {
      this.ids.set(name, null);
      this.result.droppedBlobs++;
      return;
    }
    if (headerLength > size) throw bad(`blob ${name} has a ${headerLength}-byte header in ${size} bytes`);
    this.payload.set(name, size - headerLength);
    if (this.stmts.insertBlob.run(name, size, headerLength, this.now, this.recipients).changes > 0) this.result.blobs++;
    this.ids.set(name, this.stmts.blobId.get(name) as number);
  }

  private chunk(v: Fields, bad: Bad): void {
    const id = str(v, "id", HEX64, bad);
    const blob = str(v, "blob", HEX64, bad);
    const at = (["offset", "length", "rawOffset", "rawLength"] as const).map((k) => int(v, k, bad));
    this.seen.chunks++;
    const blobId = this.ids.get(blob);
    if (blobId === undefined) throw bad(`chunk in blob ${blob}, which no earlier line names`);
    if (blobId === null) {
      this.result.droppedChunks++;
      return;
    }
    // The index would otherwise point later snapshots at bytes the blob does not have.
    const [offset, length] = at as [number, number];
    if (offset + length > this.payload.get(blob)!) throw bad(`chunk ${id} lies past the end of blob ${blob}`);
    if (this.stmts.insertChunk.run(Buffer.from(id, "hex"), blobId, ...at).changes > 0) this.result.chunks++;
  }

  private file(v: Fields, bad: Bad): void {
    const path = str(v, "path", /^\/./, bad);
    const [mode, uid, gid, size] = (["mode", "uid", "gid", "size"] as const).map((k) => int(v, k, bad));
    const mtimeNs = str(v, "mtimeNs", /^-?\d{1,20}$/, bad);
    const list = v["chunks"];
    if (!Array.isArray(list) || !list.every((c) => typeof c === "string" && HEX64.test(c))) throw bad("chunks is not a list of chunk ids");
    this.seen.files++;
    // A seed's chunk list is contiguous (snapshot/seed.ts): each chunk starts where the last ended.
    const refs: ChunkRef[] = [];
    let offset = 0;
    for (const c of list as string[]) {
      const hash = Buffer.from(c, "hex");
      const length = this.stmts.rawLength.get(hash) as number | undefined;
      // A file whose chunks are not all stored is left out: the backup reads it as new.
      if (length === undefined) {
        this.result.droppedFiles++;
        return;
      }
      refs.push({ hash, offset, length });
      offset += length;
    }
    // The seed knows size and mtime only (a snapshot records no ctime, inode or device): the
    // row gets SEEDED_INODE, and its first backup trusts those two (Catalog.lookupFile).
    const row = [encodePath(path), mode, uid, gid, size, BigInt(mtimeNs), SEEDED_INODE, packChunks(refs)];
    if (this.stmts.insertFile.run(...row).changes > 0) this.result.files++;
  }

  /** Checks the end record's counts against the lines read. */
  end(v: Fields, bad: Bad): SeedEnd {
    const end = { t: "end" as const, blobs: int(v, "blobs", bad), chunks: int(v, "chunks", bad), files: int(v, "files", bad) };
    const { blobs, chunks, files } = this.seen;
    if (end.blobs !== blobs || end.chunks !== chunks || end.files !== files) {
      throw bad(`the end record counts ${end.blobs}/${end.chunks}/${end.files} blobs/chunks/files, the seed holds ${blobs}/${chunks}/${files}`);
    }
    return end;
  }
}

function str(v: Fields, k: string, shape: RegExp, bad: Bad): string {
  const s = v[k];
  if (typeof s !== "string" || !shape.test(s)) throw bad(`${k} is missing or malformed`);
  return s;
}

function int(v: Fields, k: string, bad: Bad): number {
  const x = v[k];
  if (typeof x !== "number" || !Number.isSafeInteger(x) || x < 0) throw bad(`${k} is not a non-negative integer`);
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
