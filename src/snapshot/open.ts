import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { X25519Identity } from "../crypto/keys.js";
import { IntegrityError } from "../errors.js";
import type { Repository, SnapshotObject } from "../repo/repository.js";
import { SnapshotReader } from "./read.js";
import type { SnapshotCache } from "./cache.js";

export interface OpenOptions {
  /** Where decrypted snapshot databases are kept between commands; none: a temp copy per call. */
  cache?: SnapshotCache;
}

/**
 * Opens a snapshot database, runs `fn`, and closes it whatever happens. Without a cache the
 * database is downloaded to a private temp directory removed afterwards; with one it is taken
 * from the cache when a checked copy is there, and otherwise downloaded into it. The
 * decrypted database is metadata on the recovery machine only.
 */
export async function withSnapshot<T>(
  repo: Repository,
  snapshot: SnapshotObject,
  identities: readonly X25519Identity[],
  fn: (reader: SnapshotReader) => Promise<T>,
  signal?: AbortSignal,
  options: OpenOptions = {},
): Promise<T> {
  if (options.cache !== undefined) {
    let started = false;
    const run = (reader: SnapshotReader) => {
      started = true;
      return fn(reader);
    };
    try {
      return await viaCache(options.cache, repo, snapshot, identities, run, signal);
    } catch (err) {
      // The cache's disk failing (full, read-only, gone) must not fail a command that works
      // without it: once more the plain way, unless the command itself had begun.
      if (started || !isLocalDiskError(err)) throw err;
    }
  }
  const dir = await mkdtemp(join(tmpdir(), "vaultik-snap-"));
  try {
    const path = join(dir, "snapshot.sqlite");
    await repo.getSnapshot(snapshot, identities, path, { signal });
    return await read(path, snapshot, fn);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The checked copy in the cache, else a download into it (see SnapshotCache). */
async function viaCache<T>(
  cache: SnapshotCache,
  repo: Repository,
  snapshot: SnapshotObject,
  identities: readonly X25519Identity[],
  fn: (reader: SnapshotReader) => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  const entry = { location: repo.location, object: snapshot, publicKeys: identities.map((i) => i.publicKey) };
  const cached = await cache.lookup(entry);
  if (cached !== undefined) return read(cached, snapshot, fn);
  const temp = cache.tempPath();
  try {
    await repo.getSnapshot(snapshot, identities, temp, { signal });
    // Checked before it is kept: the cache holds only databases that opened as this snapshot.
    checkedReader(temp, snapshot).close();
    const path = await cache.store(entry, temp);
    return await read(path, snapshot, fn);
  } finally {
    await rm(temp, { force: true });
  }
}

const DISK_ERRORS = new Set(["ENOSPC", "EDQUOT", "EROFS", "EACCES", "EPERM", "EIO", "ENOENT"]);

/** A failure of the local file system (a Node system error), not of the store or the data. */
function isLocalDiskError(err: unknown): boolean {
  const e = err as NodeJS.ErrnoException | undefined;
  return e instanceof Error && typeof e.code === "string" && DISK_ERRORS.has(e.code) && (e.syscall !== undefined || e.code === "ENOSPC");
}

async function read<T>(path: string, snapshot: SnapshotObject, fn: (reader: SnapshotReader) => Promise<T>): Promise<T> {
  const reader = checkedReader(path, snapshot);
  try {
    return await fn(reader);
  } finally {
    reader.close();
  }
}

/**
 * The name is what users and retention choose by; the content must be that snapshot.
 * Otherwise a host with put access could copy an old snapshot under a new name and roll
 * `latest` back, or make one id restore another's tree.
 */
function checkedReader(path: string, snapshot: SnapshotObject): SnapshotReader {
  const reader = new SnapshotReader(path, snapshot.key);
  if (reader.meta.id !== snapshot.id) {
    reader.close();
    throw new IntegrityError(
      snapshot.key,
      `the object named snapshot ${snapshot.id} holds snapshot ${JSON.stringify(reader.meta.id)}: refusing it (copied or crafted under another name)`,
    );
  }
  return reader;
}
