import type { Readable } from "node:stream";

/**
 * The only door to a repository's bytes, whether a local directory or an S3 bucket.
 *
 * The contract (every driver passes test/store-contract.ts):
 * - Keys are `/`-separated relative names (`blobs/ab/cd/abcd…`, `index/…`). No leading `/`, no
 *   empty, `.` or `..` segment; drivers reject such keys with a StoreError.
 * - `put` never overwrites. If the key already exists it leaves the stored object alone and
 *   resolves to `false`; otherwise it stores the whole body atomically (a reader never sees a
 *   partial object) and resolves to `true`. Because every object we write is content-addressed,
 *   "already there" means "already done".
 * - `get` streams the object, or the byte range `[offset, offset + length)` of it. A range that
 *   runs past the end yields the bytes that exist. A missing key rejects with NotFoundError
 *   naming the store and key.
 * - `stat` gives size and modification time, or rejects with NotFoundError.
 * - `list(prefix)` yields every object whose key starts with `prefix`, in no promised order.
 * - `delete` removes the object; deleting a missing key is not an error (S3 semantics).
 * - Every other failure is a StoreError naming the store (never its credentials) and the key,
 *   with the driver's error as `cause`.
 */
export interface Store {
  /** A human-readable, secret-free name for messages: `s3://bucket/prefix`, `/var/backups/x`. */
  readonly location: string;
  put(key: string, body: PutBody, options?: PutOptions): Promise<boolean>;
  get(key: string, options?: GetOptions): Promise<Readable>;
  stat(key: string, options?: CallOptions): Promise<ObjectInfo>;
  list(prefix: string, options?: CallOptions): AsyncIterable<ObjectInfo>;
  delete(key: string, options?: CallOptions): Promise<void>;
}

/**
 * A body is either bytes in memory or something that can be opened (again, for retries) as a
 * stream of a known size, such as a spooled temp file.
 */
export type PutBody = Uint8Array | StreamBody;

export interface StreamBody {
  readonly size: number;
  open(): Readable;
  /** The local file the body is, when it is one: a directory store copies it in the kernel. */
  readonly file?: string;
}

export interface CallOptions {
  signal?: AbortSignal;
}

export interface PutOptions extends CallOptions {
  /**
   * SHA-256 of the body, when the caller already knows it (blob names are this hash). Drivers
   * that can have the server verify it do (S3: `x-amz-checksum-sha256`).
   */
  sha256?: Uint8Array;
}

export interface GetOptions extends CallOptions {
  range?: ByteRange;
}

export interface ByteRange {
  offset: number;
  length: number;
}

export interface ObjectInfo {
  key: string;
  size: number;
  mtime: Date;
}

export function isStreamBody(body: PutBody): body is StreamBody {
  return !(body instanceof Uint8Array);
}

export function bodySize(body: PutBody): number {
  return isStreamBody(body) ? body.size : body.byteLength;
}
