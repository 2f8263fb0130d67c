import { createReadStream, createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import { Readable } from "node:stream";
import { AgeEncryptor, createDecryptStream } from "../crypto/age.js";
import type { X25519Identity, X25519Recipient } from "../crypto/keys.js";
import { NotFoundError } from "../errors.js";
import { BlobReader } from "../pack/reader.js";
import { Spool } from "../pack/spool.js";
import type { SealedBlob } from "../pack/writer.js";
import { compressStream, decompressStream } from "../pack/zstd-stream.js";
import { parseSnapshotId, type SnapshotName } from "../model/snapshot-id.js";
import type { CallOptions, Store } from "../store/store.js";
import { storeBlob } from "./blobs.js";

// A repository is a Store plus the naming rules of docs/FORMAT.md: blobs under `blobs/`,
// snapshot databases under the index prefix. Everything above this layer speaks in blobs and
// snapshots, never in keys.

export const SNAPSHOT_SUFFIX = ".sqlite.zst.age";

export interface SnapshotObject extends SnapshotName {
  key: string;
  size: number;
}

export class Repository {
  readonly indexPrefix: string;

  constructor(
    readonly store: Store,
    indexPrefix = "index/",
  ) {
    this.indexPrefix = indexPrefix.endsWith("/") ? indexPrefix : `${indexPrefix}/`;
  }

  get location(): string {
    return this.store.location;
  }

  snapshotKey(id: string): string {
    return `${this.indexPrefix}${id}${SNAPSHOT_SUFFIX}`;
  }

  /** Every snapshot, oldest first. Needs no key: ids carry host and time. */
  async listSnapshots(options: CallOptions = {}): Promise<SnapshotObject[]> {
    const out: SnapshotObject[] = [];
    for await (const info of this.store.list(this.indexPrefix, options)) {
      const rest = info.key.slice(this.indexPrefix.length);
      if (rest.includes("/") || !rest.endsWith(SNAPSHOT_SUFFIX)) continue;
      const name = parseSnapshotId(rest.slice(0, -SNAPSHOT_SUFFIX.length));
      if (name) out.push({ ...name, key: info.key, size: info.size });
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
      await this.store.put(this.snapshotKey(id), sealed.body, { ...options, sha256: sealed.sha256 });
      return sealed.size;
    } finally {
      await sealed.dispose();
    }
  }

  /** Downloads, decrypts and decompresses a snapshot database to `dest`. */
  async getSnapshot(snapshot: SnapshotObject, identities: readonly X25519Identity[], dest: string, options: CallOptions = {}): Promise<void> {
    const body = await this.store.get(snapshot.key, options);
    const plain = body.pipe(createDecryptStream(identities, snapshot.key));
    body.once("error", (err) => plain.destroy(err));
    await pipeline(Readable.from(decompressStream(plain, snapshot.key, { signal: options.signal })), createWriteStream(dest, { mode: 0o600 }), {
      signal: options.signal,
    });
  }

  async deleteSnapshot(snapshot: SnapshotObject, options: CallOptions = {}): Promise<void> {
    await this.store.delete(snapshot.key, options);
  }

  storeBlob(blob: SealedBlob, options: CallOptions = {}): Promise<boolean> {
    return storeBlob(this.store, blob, options);
  }

  blobReader(identities: readonly X25519Identity[]): BlobReader {
    return new BlobReader(this.store, identities);
  }
}
