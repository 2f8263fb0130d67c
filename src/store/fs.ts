import { constants } from "node:fs";
import { copyFile, link, lstat, mkdir, open, opendir, readdir, rename, rmdir, stat, unlink } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { createHash, randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { dirname, join, resolve, sep } from "node:path";
import { Readable, addAbortSignal } from "node:stream";
import { StoreError } from "../errors.js";
import { writeAll } from "../util/fsio.js";
import { ownStart, pidAlive } from "../util/process.js";
import { codeOf, diskFailure, isAbsent, notFound } from "./errors.js";
import { checkKey } from "./keys.js";
import { isStreamBody } from "./store.js";
import type { CallOptions, GetOptions, ObjectInfo, PutBody, PutOptions, Store } from "./store.js";

/**
 * Bodies are written here first and only linked into place once complete and synced, so a crash
 * leaves at worst an orphan in this directory, never a partial object under its real name.
 */
const TMP_DIR = ".tmp";

// Codes with which link(2) says "this filesystem has no hard links", not "this went wrong".
const LINK_UNSUPPORTED = new Set(["EPERM", "ENOTSUP", "EOPNOTSUPP", "EXDEV", "ENOSYS", "EMLINK"]);

/**
 * Temp files are named after the process writing them (host, pid, start time), so a later run
 * can tell the leftovers of a killed one from a live writer's and remove them.
 */
const HOST_TAG = createHash("sha256").update(hostname()).digest("hex").slice(0, 8);
const OWNER = `${HOST_TAG}.${process.pid}.${ownStart ?? "0"}`;
const TEMP_NAME = /^([0-9a-f]{8})\.(\d+)\.(\d+)\.[0-9a-f]+$/;
/** Temp files of another form (older vaultik) or another host are removed only when this old. */
const FOREIGN_TEMP_AGE_MS = 24 * 3600_000;

/** A repository in a local directory; keys map to paths below `root`. */
export function openFsStore(root: string): Store {
  const base = resolve(root);
  const location = base;
  const tmpDir = join(base, TMP_DIR);
  let canLink = true;
  let swept: Promise<void> | undefined;

  function pathOf(key: string): string {
    checkKey(location, key);
    if (isReserved(key)) {
      throw new StoreError(location, key, `keys under ${TMP_DIR}/ are reserved for temporary files`);
    }
    return join(base, ...key.split("/"));
  }

  function fail(err: unknown, key: string | undefined, action: string, path: string, signal?: AbortSignal): Error {
    return diskFailure({ location, key, signal }, action, path, err);
  }

  /**
   * Removes temp files of writers that are gone: a killed backup leaves its partial bodies here,
   * and, killed between link and unlink, second names of published objects (removing those
   * removes only the name). Runs once per store, before its first write.
   */
  async function sweepTemp(now = Date.now()): Promise<void> {
    let names: string[];
    try {
      names = await readdir(tmpDir);
    } catch {
      return; // none yet
    }
    for (const name of names) {
      const m = TEMP_NAME.exec(name);
      const path = join(tmpDir, name);
      let gone: boolean;
      if (m && m[1] === HOST_TAG) gone = !pidAlive(Number(m[2]), m[3] === "0" ? undefined : m[3]);
      else gone = await stat(path).then((st) => now - st.mtimeMs > FOREIGN_TEMP_AGE_MS, () => false);
      if (gone) await unlink(path).catch(() => {});
    }
  }

  /**
   * Makes `tmp` visible as `final` unless something is already there. link(2) is atomic and
   * refuses to replace, which is exactly "put if absent"; rename(2) would silently overwrite.
   */
  async function publish(key: string, tmp: string, final: string): Promise<boolean> {
    for (let attempt = 1; ; attempt++) {
      const created = await mkdir(dirname(final), { recursive: true });
      try {
        if (canLink) await link(tmp, final);
        else return await renameIfAbsent(key, tmp, final);
        await syncDirs(created, dirname(final));
        return true;
      } catch (err) {
        const code = codeOf(err);
        if (code === "EEXIST") {
          await occupied(key, final); // throws if what is there is a directory
          return false;
        }
        // A concurrent delete pruned the (then empty) parent between our mkdir and link.
        if (code === "ENOENT" && attempt < 5) continue;
        if (code !== undefined && LINK_UNSUPPORTED.has(code) && canLink) {
          canLink = false;
          return await renameIfAbsent(key, tmp, final);
        }
        throw err;
      }
    }
  }

  /**
   * Fallback for filesystems without hard links (some FUSE, SMB, FAT mounts). Readers still never
   * see a partial object, but two writers racing on one key may both "win"; since keys name
   * their content, the loser rewrites identical bytes.
   */
  async function renameIfAbsent(key: string, tmp: string, final: string): Promise<boolean> {
    if (await occupied(key, final)) return false;
    const created = await mkdir(dirname(final), { recursive: true });
    await rename(tmp, final);
    await syncDirs(created, dirname(final));
    return true;
  }

  /**
   * Syncs `parent`, and when mkdir had to create directories (`created` is the topmost), each of
   * them and the one holding it, so the new entries survive a power cut.
   */
  async function syncDirs(created: string | undefined, parent: string): Promise<void> {
    const dirs = [parent];
    if (created !== undefined) {
      for (let dir = parent; dir !== created && dir !== dirname(dir); ) dirs.push((dir = dirname(dir)));
      dirs.push(dirname(created));
    }
    for (const dir of dirs.reverse()) await syncDir(dir);
  }

  /**
   * Whether an object already holds `final`. A directory there (the key is also a prefix of
   * other keys, which S3 allows and a filesystem cannot) is an error, not "already stored".
   */
  async function occupied(key: string, final: string): Promise<boolean> {
    try {
      if (!(await lstat(final)).isDirectory()) return true;
    } catch (err) {
      if (isAbsent(err)) return false;
      throw err;
    }
    throw new StoreError(location, key, `${final} is a directory: the key is also a prefix of other keys`);
  }

  async function writeTemp(body: PutBody, signal: AbortSignal | undefined): Promise<string> {
    await (swept ??= sweepTemp());
    await mkdir(tmpDir, { recursive: true });
    const tmp = join(tmpDir, `${OWNER}.${randomBytes(8).toString("hex")}`);
    // A body that is a local file is copied by the kernel: no bytes through this thread.
    const file = isStreamBody(body) ? body.file : undefined;
    let fh: FileHandle;
    try {
      if (file !== undefined) await copyFile(file, tmp, constants.COPYFILE_EXCL);
      fh = await open(tmp, file === undefined ? "wx" : "r+");
    } catch (err) {
      if (file !== undefined) await unlink(tmp).catch(() => {});
      throw err;
    }
    try {
      const size = file === undefined ? await writeBody(fh, body, signal) : (body as { size: number }).size;
      await fh.sync();
      // The last word before publishing: what the disk holds is what was sealed, all of it.
      const held = (await fh.stat()).size;
      if (held !== size) throw new Error(`temp file holds ${held} bytes after writing ${size}`);
    } catch (err) {
      await fh.close().catch(() => {});
      await unlink(tmp).catch(() => {});
      throw err;
    }
    await fh.close();
    return tmp;
  }

  /** Writes the whole body (every short write continued) and returns its length. */
  async function writeBody(fh: FileHandle, body: PutBody, signal: AbortSignal | undefined): Promise<number> {
    if (!isStreamBody(body)) {
      signal?.throwIfAborted();
      await writeAll(fh, body);
      return body.length;
    }
    const stream = body.open();
    if (signal) addAbortSignal(signal, stream);
    let written = 0;
    try {
      for await (const chunk of stream as AsyncIterable<Uint8Array>) {
        if (written + chunk.byteLength > body.size) {
          throw new Error(`body yielded more than ${body.size} bytes, declared ${body.size}`);
        }
        await writeAll(fh, chunk);
        written += chunk.byteLength;
      }
    } finally {
      stream.destroy();
    }
    if (written !== body.size) throw new Error(`body yielded ${written} bytes, declared ${body.size}`);
    return written;
  }

  async function* walk(dir: string, rel: string, prefix: string): AsyncGenerator<ObjectInfo> {
    let entries;
    try {
      entries = await opendir(dir);
    } catch (err) {
      if (isAbsent(err)) return;
      throw err;
    }
    for await (const entry of entries) {
      const key = rel === "" ? entry.name : `${rel}/${entry.name}`;
      if (isReserved(key)) continue;
      const path = join(dir, entry.name);
      // Symlinks (e.g. blobs/ moved to another disk) are followed, like the rest of the tree.
      const info = entry.isFile() || entry.isDirectory() ? entry : await stat(path).catch(() => undefined);
      if (info?.isDirectory()) {
        const sub = `${key}/`;
        if (sub.startsWith(prefix) || prefix.startsWith(sub)) yield* walk(path, key, prefix);
      } else if (info?.isFile() && key.startsWith(prefix)) {
        // The file may vanish between readdir and stat (a concurrent delete): skip it.
        const st = await stat(path).catch((err: unknown) => {
          if (isAbsent(err)) return undefined;
          throw err;
        });
        if (st) yield { key, size: st.size, mtime: st.mtime };
      }
    }
  }

  /** Removes directories left empty by a delete, up to (not including) the root. */
  async function pruneEmptyDirs(dir: string): Promise<void> {
    while (dir.length > base.length && dir.startsWith(base + sep)) {
      try {
        await rmdir(dir);
      } catch {
        return; // not empty, already gone, or not ours to remove: all fine
      }
      dir = dirname(dir);
    }
  }

  return {
    location,

    async put(key: string, body: PutBody, options: PutOptions = {}): Promise<boolean> {
      const { signal } = options;
      signal?.throwIfAborted();
      const final = pathOf(key);
      let tmp: string | undefined;
      try {
        // Cheap early exit: most puts of an existing key come from re-runs.
        if (await occupied(key, final)) return false;
        tmp = await writeTemp(body, signal);
        signal?.throwIfAborted();
        return await publish(key, tmp, final);
      } catch (err) {
        throw fail(err, key, "write", final, signal);
      } finally {
        if (tmp !== undefined) await unlink(tmp).catch(() => {});
      }
    },

    async get(key: string, options: GetOptions = {}): Promise<Readable> {
      const { signal, range } = options;
      signal?.throwIfAborted();
      const path = pathOf(key);
      if (range && !(range.offset >= 0 && range.length >= 0)) {
        throw new StoreError(location, key, `invalid range ${range.offset}+${range.length}`);
      }
      let fh: FileHandle;
      try {
        fh = await open(path, constants.O_RDONLY);
      } catch (err) {
        if (isAbsent(err) || codeOf(err) === "EISDIR") throw notFound(location, key, err);
        throw fail(err, key, "open", path, signal);
      }
      try {
        if (!(await fh.stat()).isFile()) throw notFound(location, key);
      } catch (err) {
        await fh.close();
        throw fail(err, key, "stat", path, signal);
      }
      if (range?.length === 0) {
        await fh.close();
        return Readable.from([]);
      }
      return fh.createReadStream({
        // Whole blobs are read front to back: 1 MiB reads cost a quarter of the CPU of 64 KiB ones.
        highWaterMark: 1 << 20,
        start: range?.offset,
        end: range ? range.offset + range.length - 1 : undefined,
        signal,
      });
    },

    async stat(key: string, options: CallOptions = {}): Promise<ObjectInfo> {
      options.signal?.throwIfAborted();
      const path = pathOf(key);
      try {
        const st = await stat(path);
        if (!st.isFile()) throw notFound(location, key);
        return { key, size: st.size, mtime: st.mtime };
      } catch (err) {
        if (isAbsent(err)) throw notFound(location, key, err);
        throw fail(err, key, "stat", path, options.signal);
      }
    },

    async *list(prefix: string, options: CallOptions = {}): AsyncGenerator<ObjectInfo> {
      const { signal } = options;
      signal?.throwIfAborted();
      // Any prefix of a valid key is allowed; checking it with a stand-in last character catches
      // `..`, absolute and empty segments while still allowing "" and "blobs/".
      if (prefix !== "") checkKey(location, `${prefix}_`);
      // Start at the deepest directory the prefix names in full; filter the rest by string.
      const dirPart = prefix.slice(0, prefix.lastIndexOf("/") + 1).replace(/\/$/, "");
      const start = dirPart === "" ? base : join(base, ...dirPart.split("/"));
      try {
        for await (const info of walk(start, dirPart, prefix)) {
          signal?.throwIfAborted();
          yield info;
        }
      } catch (err) {
        throw fail(err, prefix === "" ? undefined : prefix, "list", start, signal);
      }
    },

    async delete(key: string, options: CallOptions = {}): Promise<void> {
      options.signal?.throwIfAborted();
      const path = pathOf(key);
      try {
        await unlink(path);
      } catch (err) {
        if (isAbsent(err)) return;
        throw fail(err, key, "delete", path, options.signal);
      }
      await pruneEmptyDirs(dirname(path));
    },
  };
}

function isReserved(key: string): boolean {
  return key === TMP_DIR || key.startsWith(`${TMP_DIR}/`);
}

/** fsync on a directory persists its entries; some filesystems refuse it, which we accept. */
async function syncDir(dir: string): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(dir, constants.O_RDONLY);
    await fh.sync();
  } catch (err) {
    if (!["EINVAL", "EPERM", "EISDIR", "ENOTSUP", "EBADF"].includes(codeOf(err) ?? "")) throw err;
  } finally {
    await fh?.close();
  }
}
