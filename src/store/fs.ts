import { constants } from "node:fs";
import { link, lstat, mkdir, open, opendir, rename, rmdir, stat, unlink } from "node:fs/promises";
import type { FileHandle } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import { dirname, join, resolve, sep } from "node:path";
import { Readable, addAbortSignal } from "node:stream";
import { NotFoundError, StoreError } from "../errors.js";
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

// A missing file, or a path component that is a file rather than a directory.
const ABSENT = new Set(["ENOENT", "ENOTDIR"]);

/** A repository in a local directory; keys map to paths below `root`. */
export function openFsStore(root: string): Store {
  const base = resolve(root);
  const location = base;
  const tmpDir = join(base, TMP_DIR);
  let canLink = true;

  function pathOf(key: string): string {
    checkKey(location, key);
    if (isReserved(key)) {
      throw new StoreError(location, key, `keys under ${TMP_DIR}/ are reserved for temporary files`);
    }
    return join(base, ...key.split("/"));
  }

  function fail(err: unknown, key: string | undefined, action: string, path: string, signal?: AbortSignal): Error {
    if (signal?.aborted) return signal.reason as Error;
    if (err instanceof StoreError || err instanceof NotFoundError) return err;
    return new StoreError(location, key, `cannot ${action} ${path}: ${messageOf(err)}`, { cause: err });
  }

  function notFound(key: string, cause?: unknown): NotFoundError {
    return new NotFoundError(`${location} ${key}`, "not found", { cause });
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
      if (ABSENT.has(codeOf(err) ?? "")) return false;
      throw err;
    }
    throw new StoreError(location, key, `${final} is a directory: the key is also a prefix of other keys`);
  }

  async function writeTemp(body: PutBody, signal: AbortSignal | undefined): Promise<string> {
    await mkdir(tmpDir, { recursive: true });
    const tmp = join(tmpDir, randomBytes(12).toString("hex"));
    const fh = await open(tmp, "wx");
    try {
      await writeBody(fh, body, signal);
      await fh.sync();
    } catch (err) {
      await fh.close().catch(() => {});
      await unlink(tmp).catch(() => {});
      throw err;
    }
    await fh.close();
    return tmp;
  }

  async function writeBody(fh: FileHandle, body: PutBody, signal: AbortSignal | undefined): Promise<void> {
    if (!isStreamBody(body)) {
      await fh.writeFile(body, { signal });
      return;
    }
    const stream = body.open();
    if (signal) addAbortSignal(signal, stream);
    let written = 0;
    for await (const chunk of stream as AsyncIterable<Uint8Array>) {
      written += chunk.byteLength;
      if (written > body.size) break;
      await fh.write(chunk);
    }
    stream.destroy();
    if (written !== body.size) {
      throw new Error(`body yielded ${written > body.size ? `more than ${body.size}` : written} bytes, declared ${body.size}`);
    }
  }

  async function* walk(dir: string, rel: string, prefix: string): AsyncGenerator<ObjectInfo> {
    let entries;
    try {
      entries = await opendir(dir);
    } catch (err) {
      if (ABSENT.has(codeOf(err) ?? "")) return;
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
          if (ABSENT.has(codeOf(err) ?? "")) return undefined;
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
        if (ABSENT.has(codeOf(err) ?? "") || codeOf(err) === "EISDIR") throw notFound(key, err);
        throw fail(err, key, "open", path, signal);
      }
      try {
        if (!(await fh.stat()).isFile()) throw notFound(key);
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
        if (!st.isFile()) throw notFound(key);
        return { key, size: st.size, mtime: st.mtime };
      } catch (err) {
        if (ABSENT.has(codeOf(err) ?? "")) throw notFound(key, err);
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
        if (ABSENT.has(codeOf(err) ?? "")) return;
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

function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
