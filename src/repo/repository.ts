import { createReadStream } from "node:fs";
import { open } from "node:fs/promises";
import type { Readable } from "node:stream";
import { AgeEncryptor, createDecryptStream } from "../crypto/age.js";
import type { X25519Identity, X25519Recipient } from "../crypto/keys.js";
import { IntegrityError, NotFoundError } from "../errors.js";
import { parseSnapshotId, type SnapshotName } from "../model/snapshot-id.js";
import { BlobReader, type BlobSource, type ReadOptions } from "../pack/reader.js";
import { Spool } from "../pack/spool.js";
import type { SealedBlob } from "../pack/writer.js";
import { getBytes } from "../store/bytes.js";
import { writeAll } from "../util/fsio.js";
import { formatBytes } from "../util/units.js";
import type { ByteRange, CallOptions, Store } from "../store/store.js";
import { listBlobs, storeBlob, type StoredBlob } from "./blobs.js";
import {
  acquirePruneLock, beat, endRun, listNotices, listRuns, publishNotice, retireNotice, runStarted,
  type Notice, type NoticeListOptions, type PruneLock, type RunMarker,
} from "./coordination.js";
import { blobKey, DEFAULT_INDEX_PREFIX, normalizeIndexPrefix, snapshotIdOfKey, snapshotKey, type NoticeKind } from "./layout.js";
import { compressStream, decompressStream } from "./snapshot-zstd.js";

// A repository is a Store plus the naming rules of docs/FORMAT.md (layout.ts). Everything above
// this layer speaks of blobs, snapshots, runs, notices and the prune lock, never of keys, and
// never holds the store itself: it is private to repo/.

export interface SnapshotObject extends SnapshotName {
  /** The object's key: how messages name the snapshot. */
  key: string;
  size: number;
  /** When the object was stored, in ms (from the listing): with size, what tells a replaced object. */
  mtime: number;
}

export type { Notice, NoticeKind, PruneLock, RunMarker, StoredBlob };

/** Default for RepositoryOptions.maxSnapshotDb. */
export const DEFAULT_MAX_SNAPSHOT_DB = 4 * 1024 ** 3;

export interface RepositoryOptions {
  /**
   * The most a snapshot database may decompress to (it goes to a temp file, never to memory);
   * default 4 GiB. The CLI reads it from VAULTIK_MAX_SNAPSHOT_DB.
   */
  maxSnapshotDb?: number;
}

export class Repository implements BlobSource {
  readonly indexPrefix: string;
  readonly #store: Store;
  readonly #maxSnapshotDb: number;

  constructor(store: Store, indexPrefix = DEFAULT_INDEX_PREFIX, options: RepositoryOptions = {}) {
    this.#store = store;
    this.indexPrefix = normalizeIndexPrefix(indexPrefix);
    this.#maxSnapshotDb = options.maxSnapshotDb ?? DEFAULT_MAX_SNAPSHOT_DB;
  }

  get location(): string {
    return this.#store.location;
  }

  // ---- snapshots ---------------------------------------------------------------------------

  /** Every snapshot, oldest first. Needs no key: ids carry host and time. */
  async listSnapshots(options: CallOptions = {}): Promise<SnapshotObject[]> {
    const out: SnapshotObject[] = [];
    for await (const info of this.#store.list(this.indexPrefix, options)) {
      const id = snapshotIdOfKey(this.indexPrefix, info.key);
      const name = id === undefined ? undefined : parseSnapshotId(id);
      if (name) out.push({ ...name, key: info.key, size: info.size, mtime: info.mtime.getTime() });
    }
    return out.sort((a, b) => a.time.getTime() - b.time.getTime() || a.id.localeCompare(b.id));
  }

  /**
   * Finds a snapshot by full id, unique id prefix, or `latest` (optionally of one host).
   * @throws NotFoundError naming what was asked and where.
   */
  async findSnapshot(ref: string, options: CallOptions & { host?: string } = {}): Promise<SnapshotObject> {
    const all = (await this.listSnapshots(options)).filter((s) => options.host === undefined || s.host === options.host);
    if (ref === "latest") {
      const last = all[all.length - 1];
      if (!last) throw new NotFoundError(`${this.location}/${this.indexPrefix}`, "no snapshots in this repository");
      return last;
    }
    const exact = all.find((s) => s.id === ref);
    if (exact) return exact;
    const matches = all.filter((s) => s.id.startsWith(ref) || s.id.endsWith(`_${ref}`));
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) {
      throw new NotFoundError(`snapshot ${ref}`, `is ambiguous: matches ${matches.map((m) => m.id).join(", ")}`);
    }
    throw new NotFoundError(`snapshot ${ref}`, `not found in ${this.location} (see \`vaultik snapshots\`)`);
  }

  /**
   * Encrypts and uploads a snapshot database: age(zstd(file)), streamed in bounded memory.
   * Resolves to the stored size.
   */
  async putSnapshot(id: string, dbPath: string, recipients: readonly X25519Recipient[], options: CallOptions = {}): Promise<number> {
    const enc = new AgeEncryptor(recipients);
    const spool = new Spool();
    try {
      await spool.write([enc.prefix]);
      for await (const frame of compressStream(createReadStream(dbPath, { highWaterMark: 1 << 20 }), { signal: options.signal })) {
        await spool.write(enc.push(frame));
      }
      await spool.write(enc.finish());
    } catch (err) {
      await spool.discard();
      throw err;
    }
    const sealed = await spool.seal();
    try {
      await this.#store.put(snapshotKey(this.indexPrefix, id), sealed.body, { ...options, sha256: sealed.sha256 });
      return sealed.size;
    } finally {
      await sealed.dispose();
    }
  }

  /**
   * Downloads, decrypts and decompresses a snapshot database to `dest`, a frame at a time. Its
   * size is whatever the object's writer chose, so it is capped (maxSnapshotDb): past the cap,
   * an IntegrityError naming the object.
   */
  async getSnapshot(snapshot: SnapshotObject, identities: readonly X25519Identity[], dest: string, options: CallOptions = {}): Promise<void> {
    const file = await open(dest, "w", 0o600);
    let body: Readable | undefined;
    let plain: Readable | undefined;
    try {
      body = await this.#store.get(snapshot.key, options);
      const decrypted = body.pipe(createDecryptStream(identities, snapshot.key));
      plain = decrypted;
      body.once("error", (err) => decrypted.destroy(err));
      let written = 0;
      for await (const part of decompressStream(plain, snapshot.key, { signal: options.signal })) {
        written += part.length;
        if (written > this.#maxSnapshotDb) {
          throw new IntegrityError(
            snapshot.key,
            `snapshot database decompresses to more than ${formatBytes(this.#maxSnapshotDb)} (the limit; VAULTIK_MAX_SNAPSHOT_DB raises it)`,
          );
        }
        await writeAll(file, part);
      }
    } finally {
      // Stopped early (a bomb, an abort), the download must not go on into nowhere.
      body?.destroy();
      plain?.destroy();
      await file.close();
    }
  }

  async deleteSnapshot(snapshot: SnapshotObject, options: CallOptions = {}): Promise<void> {
    await this.#store.delete(snapshot.key, options);
  }

  // ---- blobs -------------------------------------------------------------------------------

  /** Stores a sealed blob (see blobs.ts); false when it was already stored. */
  storeBlob(blob: SealedBlob, options: CallOptions = {}): Promise<boolean> {
    return storeBlob(this.#store, blob, options);
  }

  /** Every stored blob, in no promised order. */
  listBlobs(options: CallOptions = {}): Promise<StoredBlob[]> {
    return listBlobs(this.#store, options);
  }

  deleteBlob(name: string, options: CallOptions = {}): Promise<void> {
    return this.#store.delete(blobKey(name), options);
  }

  blobReader(identities: readonly X25519Identity[]): BlobReader {
    return new BlobReader(this, identities);
  }

  openBlob(name: string, options: ReadOptions = {}): Promise<Readable> {
    return this.#store.get(blobKey(name), options);
  }

  readBlobRange(name: string, range: ByteRange, options: ReadOptions = {}): Promise<Buffer> {
    return getBytes(this.#store, blobKey(name), { ...options, range });
  }

  blobObject(name: string): string {
    return blobKey(name);
  }

  // ---- backup runs (heartbeats) ------------------------------------------------------------

  /** Writes a heartbeat for a running backup at `now`. Put-only: a backup deletes nothing. */
  beat(snapshotId: string, now: number, options: CallOptions = {}): Promise<void> {
    return beat(this.#store, snapshotId, now, options);
  }

  /** Marks a run as ended, whatever its outcome; written after its snapshot, if any. */
  endRun(snapshotId: string, options: CallOptions = {}): Promise<void> {
    return endRun(this.#store, snapshotId, options);
  }

  /** Store time of a run's first heartbeat (undefined when there is none). */
  runStarted(snapshotId: string, options: CallOptions = {}): Promise<number | undefined> {
    return runStarted(this.#store, snapshotId, options);
  }

  /** Every run that left a heartbeat, in store time. */
  runs(options: CallOptions = {}): Promise<RunMarker[]> {
    return listRuns(this.#store, options);
  }

  /** Removes a run's heartbeats and end marker. */
  async deleteRun(run: RunMarker, options: CallOptions = {}): Promise<void> {
    for (const k of run.keys) await this.#store.delete(k, options);
  }

  // ---- prune notices and lock --------------------------------------------------------------

  notices(kind: NoticeKind, options: NoticeListOptions = {}): Promise<Notice[]> {
    return listNotices(this.#store, kind, options);
  }

  /** Announces that `blobs` will be deleted from `notBefore` on. */
  publishNotice(blobs: readonly string[], now: number, notBefore: number, options: CallOptions = {}): Promise<Notice> {
    return publishNotice(this.#store, blobs, now, notBefore, options);
  }

  /** Moves a pending notice to done once its blobs are deleted. */
  retireNotice(notice: Notice, now: number, options: CallOptions = {}): Promise<void> {
    return retireNotice(this.#store, notice, now, options);
  }

  deleteNotice(notice: Notice, options: CallOptions = {}): Promise<void> {
    return this.#store.delete(notice.key, options);
  }

  /** Takes the repository's prune lock (see coordination.ts); LockedError when another holds it. */
  acquirePruneLock(now: number, ttlMs: number, options: CallOptions = {}): Promise<PruneLock> {
    return acquirePruneLock(this.#store, now, ttlMs, options);
  }
}
