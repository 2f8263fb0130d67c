import { createHash, randomBytes } from "node:crypto";
import { createReadStream, mkdirSync, lstatSync, readdirSync, readFileSync, rmSync, statSync, chmodSync, utimesSync, renameSync, type Stats } from "node:fs";
import { join } from "node:path";
import { writeFileAtomicSync } from "../util/fsio.js";

// Decrypted snapshot databases kept on the recovery machine between commands, so that `ls`,
// `find`, `diff` and a following `restore` download a snapshot once. Safe to delete at any
// time: every entry can be fetched again.
//
// An entry is named by a hash of the repository location, the object's key, size and
// modification time, and the public keys of the identities that opened it: a snapshot object
// that is replaced, or a repository that reuses an id, is a miss, never a stale hit, and a
// command given other keys downloads and decrypts for itself (a wrong key still fails as it
// would without the cache). Beside each database is the SHA-256 of its bytes as they were
// checked when downloaded; an entry whose bytes no longer hash to it (a bad disk, a truncated
// write, a hand edit) is deleted and fetched again, never read. The directory is 0700: the
// databases hold every path and name of the backed-up machine.

/** What the cache needs of a snapshot object to tell whether an entry is that object. */
export interface CachedObject {
  key: string;
  size: number;
  /** The object's modification time in ms, from the listing. */
  mtime: number;
}

/** Which entry: the object, where it lives, and the public keys of the identities reading it. */
export interface EntryKey {
  location: string;
  object: CachedObject;
  publicKeys: readonly Uint8Array[];
}

export const DEFAULT_CACHE_SIZE = 4 * 1024 ** 3;

/** Temp files older than this are leftovers of a killed process. */
const STALE_TEMP_MS = 3_600_000;
const DB = ".sqlite";
const SUM = ".sha256";

/** Stores between two scans of the directory when this process's count says the cache fits. */
const RESCAN_EVERY = 64;

export class SnapshotCache {
  /** Entries live here, one database and one checksum file each. */
  readonly #dir: string;
  /**
   * Bytes of the entries at the last scan plus what this process stored since: a scan per store
   * made `vaultik serve`'s first poll of 2000 snapshots quadratic (a readdir and a stat of every
   * entry each time). Other processes' entries show at the next scan, at most RESCAN_EVERY stores on.
   */
  #known: number | undefined;
  #sinceScan = 0;

  private constructor(
    dir: string,
    readonly maxBytes: number,
  ) {
    this.#dir = dir;
  }

  /**
   * The cache in `root` (made 0700 if missing), or undefined when it cannot be used (not ours,
   * not writable): commands then download to a temp file as without a cache.
   */
  static open(root: string, maxBytes = DEFAULT_CACHE_SIZE): SnapshotCache | undefined {
    const dir = join(root, "snapshots");
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      for (const d of [root, dir]) {
        const s = lstatSync(d);
        // A directory someone else owns, or a symlink, could be read or swapped by them.
        if (!s.isDirectory() || (process.getuid !== undefined && s.uid !== process.getuid())) return undefined;
        if ((s.mode & 0o077) !== 0) chmodSync(d, 0o700);
      }
      return new SnapshotCache(dir, maxBytes);
    } catch {
      return undefined;
    }
  }

  get dir(): string {
    return this.#dir;
  }

  #base(e: EntryKey): string {
    const keys = e.publicKeys.map((k) => Buffer.from(k).toString("hex")).sort();
    const name = createHash("sha256").update(JSON.stringify([e.location, e.object.key, e.object.size, e.object.mtime, keys])).digest("hex");
    return join(this.#dir, name.slice(0, 40));
  }

  /**
   * The path of the cached database of this object, checked against its checksum, or undefined.
   * A damaged entry is removed.
   */
  async lookup(entry: EntryKey): Promise<string | undefined> {
    const base = this.#base(entry);
    let expected: string;
    try {
      expected = readFileSync(base + SUM, "utf8").trim();
    } catch {
      return undefined;
    }
    const actual = await fileHash(base + DB).catch(() => undefined);
    if (actual === undefined || actual !== expected) {
      this.#remove(base);
      return undefined;
    }
    // Recently used entries are the last to go (see #evict).
    const now = new Date();
    try {
      utimesSync(base + SUM, now, now);
    } catch {
      // Evicted by another process meanwhile: the open database file still reads.
    }
    return base + DB;
  }

  /** A fresh temp path inside the cache, on the file system the entry will be renamed on. */
  tempPath(): string {
    return join(this.#dir, `.tmp-${process.pid}-${randomBytes(6).toString("hex")}${DB}`);
  }

  /**
   * Makes the checked database at `temp` (from tempPath) the entry for this object and evicts
   * the least recently used entries beyond the size limit. Returns the entry's path.
   */
  async store(entry: EntryKey, temp: string): Promise<string> {
    const base = this.#base(entry);
    const size = statSync(temp).size;
    // Larger than the whole cache: used from the temp file this once (the caller removes it).
    if (size > this.maxBytes) return temp;
    const sum = await fileHash(temp);
    // The database first: a checksum without its database is a miss; the other way round, a
    // racing reader could pair a new database with an old checksum file of the same name
    // (same name means same object, so the same bytes, but nothing needs that argument).
    renameSync(temp, base + DB);
    writeFileAtomicSync(base + SUM, `${sum}\n`, 0o600);
    if (this.#known !== undefined && this.#known + size <= this.maxBytes && ++this.#sinceScan < RESCAN_EVERY) this.#known += size;
    else this.#evict(base);
    return base + DB;
  }

  /** Removes least recently used entries until the cache fits, never `keep`. */
  #evict(keep: string): void {
    const entries: { base: string; used: number; bytes: number }[] = [];
    const now = Date.now();
    for (const name of readdirSync(this.#dir)) {
      const path = join(this.#dir, name);
      const s = statOrUndefined(path);
      if (s === undefined) continue;
      if (name.startsWith(".tmp-")) {
        if (now - s.mtimeMs > STALE_TEMP_MS) rmSync(path, { force: true });
        continue;
      }
      if (!name.endsWith(SUM)) continue;
      const base = path.slice(0, -SUM.length);
      entries.push({ base, used: s.mtimeMs, bytes: statOrUndefined(base + DB)?.size ?? 0 });
    }
    let total = entries.reduce((n, e) => n + e.bytes, 0);
    entries.sort((a, b) => a.used - b.used);
    for (const e of entries) {
      if (total <= this.maxBytes) break;
      if (e.base === keep) continue;
      this.#remove(e.base);
      total -= e.bytes;
    }
    this.#known = total;
    this.#sinceScan = 0;
  }

  #remove(base: string): void {
    rmSync(base + SUM, { force: true });
    rmSync(base + DB, { force: true });
  }
}

function statOrUndefined(path: string): Stats | undefined {
  try {
    return statSync(path);
  } catch {
    return undefined;
  }
}

async function fileHash(path: string): Promise<string> {
  const h = createHash("sha256");
  for await (const part of createReadStream(path, { highWaterMark: 1 << 20 })) h.update(part as Buffer);
  return h.digest("hex");
}
