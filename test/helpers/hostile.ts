import { spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { encrypt } from "../../src/crypto/age.js";
import { parseRecipient } from "../../src/crypto/keys.js";
import { chunkId, sha256 } from "../../src/model/ids.js";
import { blobKey, snapshotKey } from "../../src/repo/layout.js";
import { Repository } from "../../src/repo/repository.js";
import { SNAPSHOT_FORMAT, SNAPSHOT_SCHEMA } from "../../src/snapshot/schema.js";
import type { Store } from "../../src/store/store.js";
import { BIN, cleanEnv, collect, type CliOptions, type CliResult } from "./cli.js";

// Objects a compromised source host could write: it holds the public key and put credentials,
// nothing more. Everything here is built from the recipient alone, as that host would, and put
// under the names docs/FORMAT.md gives them, so a reader finds them as it finds honest ones.

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);
/** Block_Maximum_Size: the largest run one RLE block may declare. */
const RLE_MAX = 128 * 1024;

/**
 * One zstd frame that decompresses to `size` zero bytes (a multiple of 128 KiB), written as RLE
 * blocks of 4 bytes each: 4 GiB costs 128 KiB. No content size in its header, like our frames.
 */
export function zstdBomb(size = 4 * 1024 ** 3): Buffer {
  if (size <= 0 || size % RLE_MAX !== 0) throw new RangeError(`size must be a positive multiple of ${RLE_MAX}`);
  const blocks = size / RLE_MAX;
  // Frame_Header_Descriptor 0: no content size, no checksum, a Window_Descriptor follows.
  // 0x58 is a 2 MiB window, what the addon writes at level 3.
  const out = Buffer.alloc(6 + blocks * 4);
  ZSTD_MAGIC.copy(out, 0);
  out[4] = 0x00;
  out[5] = 0x58;
  for (let i = 0; i < blocks; i++) {
    const last = i === blocks - 1 ? 1 : 0;
    const header = last | (1 << 1) | (RLE_MAX << 3); // Block_Type 1 = RLE
    out.writeUIntLE(header, 6 + i * 4, 3);
    out[6 + i * 4 + 3] = 0; // the repeated byte
  }
  return out;
}

/** A snapshot id for `host` at `time`, as FORMAT.md 4.1 spells them. */
export function snapshotIdAt(time: Date, host: string, suffix: string): string {
  const stamp = time.toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  return `${stamp}_${host}_${suffix}`;
}

export interface CraftedBlob {
  name: string;
  size: number;
  headerLength: number;
}

/** Seals `plain` to `recipient` and stores it under its proper blob name (SHA-256 of the ciphertext). */
export async function putBlob(store: Store, recipient: string, plain: Uint8Array): Promise<CraftedBlob> {
  const sealed = encrypt(plain, [parseRecipient(recipient)]);
  const digest = sha256(sealed);
  const name = digest.toString("hex");
  await store.put(blobKey(name), sealed, { sha256: digest });
  return { name, size: sealed.length, headerLength: headerLength(sealed) };
}

/** Bytes of an age header, through the MAC line (FORMAT.md 3.1). */
function headerLength(file: Buffer): number {
  const mac = file.indexOf("\n--- ");
  return file.indexOf("\n", mac + 1) + 1;
}

export interface CraftedFile {
  /** Path in the snapshot, without the leading `/`. */
  path: string;
  size: number;
  /** The chunk's id, blob and where its frame is. */
  chunk: { id: Buffer; blob: CraftedBlob; offset: number; length: number; rawOffset: number; rawLength: number };
}

/**
 * Writes a snapshot database holding `files` (one chunk each), with the directories above them,
 * and uploads it under `id` sealed to `recipient`, the way a backup does.
 */
export async function putSnapshot(store: Store, recipient: string, id: string, files: readonly CraftedFile[]): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), "vaultik-hostile-"));
  try {
    const path = join(dir, "snapshot.sqlite");
    const db = new Database(path);
    db.exec(SNAPSHOT_SCHEMA);
    const host = id.split("_")[1] ?? "";
    const time = `${id.slice(0, 4)}-${id.slice(4, 6)}-${id.slice(6, 8)}T${id.slice(9, 11)}:${id.slice(11, 13)}:${id.slice(13, 15)}.000Z`;
    const bytes = files.reduce((n, f) => n + f.size, 0);
    const dirs = new Set(files.flatMap((f) => f.path.split("/").slice(0, -1).map((_, i, parts) => parts.slice(0, i + 1).join("/"))));
    const meta: Record<string, unknown> = {
      format: SNAPSHOT_FORMAT, id, host, time, sourceDirs: ["/data"], vaultikVersion: "0.0.0-hostile",
      chunker: "fastcdc-2016", chunkSize: 65536, chunkHash: "sha256", blobHash: "sha256", compression: "zstd",
      stats: { files: files.length, dirs: dirs.size, symlinks: 0, bytes, errors: 0, changed: 0 },
    };
    const setMeta = db.prepare("INSERT INTO meta(key, value) VALUES (?, ?)");
    for (const [k, v] of Object.entries(meta)) setMeta.run(k, typeof v === "string" ? v : JSON.stringify(v));
    const addEntry = db.prepare("INSERT INTO files(path, type, mode, uid, gid, size, mtime_ns) VALUES (CAST(? AS BLOB), ?, ?, 0, 0, ?, 0)");
    for (const d of [...dirs].sort()) addEntry.run(d, "dir", 0o755, 0);
    const addBlob = db.prepare("INSERT OR IGNORE INTO blobs(name, size, header_length) VALUES (?, ?, ?)");
    const blobId = db.prepare("SELECT id FROM blobs WHERE name = ?").pluck();
    const addChunk = db.prepare("INSERT OR IGNORE INTO chunks VALUES (?, ?, ?, ?, ?, ?, 'zstd')");
    const addRef = db.prepare("INSERT INTO file_chunks(file_id, offset, chunk) VALUES (?, 0, ?)");
    for (const f of files) {
      const { lastInsertRowid } = addEntry.run(f.path, "file", 0o644, f.size);
      const c = f.chunk;
      addBlob.run(c.blob.name, c.blob.size, c.blob.headerLength);
      addChunk.run(c.id, blobId.get(c.blob.name), c.offset, c.length, c.rawOffset, c.rawLength);
      addRef.run(lastInsertRowid, c.id);
    }
    db.close();
    await new Repository(store).putSnapshot(id, path, [parseRecipient(recipient)]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The zstd bomb in a correctly named blob, referenced by a crafted snapshot `id` as the only
 * chunk of `data/bomb.bin` (raw_length 14). Its first 14 bytes are zeros, so the chunk's id even
 * matches: only the size of the frame's output betrays it. Returns the blob's name.
 */
export async function putBlobBomb(store: Store, recipient: string, id: string, bomb = zstdBomb()): Promise<string> {
  const blob = await putBlob(store, recipient, bomb);
  const rawLength = 14;
  await putSnapshot(store, recipient, id, [
    {
      path: "data/bomb.bin",
      size: rawLength,
      chunk: { id: Buffer.from(chunkId(Buffer.alloc(rawLength)), "hex"), blob, offset: 0, length: bomb.length, rawOffset: 0, rawLength },
    },
  ]);
  return blob.name;
}

/** The zstd bomb as snapshot `id`'s database object (age(zstd(…)) of 4 GiB of zeros). Returns its key. */
export async function putSnapshotBomb(store: Store, recipient: string, id: string, bomb = zstdBomb()): Promise<string> {
  const key = snapshotKey("index/", id);
  await store.put(key, encrypt(bomb, [parseRecipient(recipient)]));
  return key;
}

const TIME = "/usr/bin/time";

/**
 * Runs the CLI under GNU time (`/usr/bin/time -v`, Debian package `time`) and gives its result
 * with its peak resident set size in bytes. time's report is taken out of stderr.
 */
export async function vaultikPeakRss(args: readonly string[], options: CliOptions = {}): Promise<CliResult & { peakRss: number }> {
  const child = spawn(TIME, ["-v", process.execPath, BIN, ...args], { env: cleanEnv(options.env), cwd: options.cwd, stdio: ["ignore", "pipe", "pipe"] });
  const result = await collect(child, options.timeoutMs);
  const report = result.stderr.lastIndexOf("\tCommand being timed:");
  const rss = /Maximum resident set size \(kbytes\): (\d+)/.exec(result.stderr.slice(report));
  if (report < 0 || !rss) throw new Error(`no report from ${TIME} -v (apt-get install time): ${result.stderr}`);
  // time reports a child killed by a signal as "Command terminated by signal N" and exits 128+N.
  return { ...result, stderr: result.stderr.slice(0, report), peakRss: Number(rss[1]) * 1024 };
}
