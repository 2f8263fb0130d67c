import { Readable } from "node:stream";
import { StoreError } from "../errors.js";
import { attemptsOf, isMissingObject, nameOf, notFound, remoteFailure, statusOf } from "./errors.js";
import { checkKey } from "./keys.js";
import { endpointOf, lazyConnection, type Connection, type S3StoreOptions } from "./s3-client.js";
import { resumable, type Part } from "./s3-download.js";
import { envNumber, RetryBudget, retryPolicy, withBudget } from "./s3-retry.js";
import { putMultipart, putStream, sha256Of } from "./s3-upload.js";
import { bodySize, isStreamBody } from "./store.js";
import type { CallOptions, GetOptions, ObjectInfo, PutBody, PutOptions, Store } from "./store.js";

export type { S3StoreOptions } from "./s3-client.js";

const MiB = 1024 * 1024;

/** A repository under `prefix` in an S3 (or S3-compatible) bucket. */
export function openS3Store(opts: S3StoreOptions): Store {
  const env = process.env;
  const prefix = (opts.prefix ?? "").replace(/^\/+|\/+$/g, "");
  const keyPrefix = prefix === "" ? "" : `${prefix}/`;
  const location = `s3://${opts.bucket}${prefix === "" ? "" : `/${prefix}`}`;
  if (prefix !== "") checkKey(location, prefix);
  const endpoint = endpointOf(opts, env);
  const retry = retryPolicy(opts, env);
  const timeoutMs = opts.timeoutMs ?? envNumber(env, "VAULTIK_S3_TIMEOUT_MS", 1) ?? 120_000;
  const connect = lazyConnection(opts, endpoint, retry, timeoutMs);
  const multipartThreshold = opts.multipartThreshold ?? 64 * MiB;
  const partSize = opts.partSize ?? 16 * MiB;
  // Anything that could leak into an SDK message is scrubbed from ours, however unlikely.
  const secrets = [opts.secretAccessKey, opts.sessionToken, env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"]]
    .filter((s): s is string => s !== undefined && s.length >= 8);

  function objectName(key: string): string {
    checkKey(location, key);
    return keyPrefix + key;
  }

  function fail(err: unknown, key: string | undefined, action: string, signal?: AbortSignal, attempts?: number): Error {
    return remoteFailure({ location, key, signal, endpoint: endpoint.name, secrets, attempts }, action, err);
  }

  /** `send` with a retry budget of its own, so it cannot draw on one it happens to run inside. */
  function alone<T>(send: () => Promise<T>): Promise<T> {
    return withBudget(new RetryBudget(retry), send);
  }

  function changed(key: string, etag: string | undefined): StoreError {
    return new StoreError(location, key, `changed while it was read (it is no longer version ${etag ?? "?"}); nothing of the new version was used`);
  }

  /** One GET of bytes [from, to) (to undefined: to the end) of version `etag`, if given. */
  async function getPart(
    { sdk, client }: Connection, key: string, name: string, budget: RetryBudget, signal: AbortSignal | undefined,
    from: number, to: number | undefined, etag: string | undefined,
  ): Promise<Part> {
    const ranged = from > 0 || to !== undefined;
    const input = { Bucket: opts.bucket, Key: name, Range: ranged ? `bytes=${from}-${to === undefined ? "" : to - 1}` : undefined, IfMatch: etag };
    const res = await withBudget(budget, () => client.send(new sdk.GetObjectCommand(input), { abortSignal: signal }));
    const body = res.Body as Readable;
    // Servers that ignore If-Match (s3rver) still say which version they sent.
    if (etag !== undefined && res.ETag !== undefined && res.ETag !== etag) {
      body.destroy();
      throw changed(key, etag);
    }
    // Content-Range also covers servers that answer more than asked (s3rver sends the whole
    // object for `bytes=0-0`) or ignore Range and send 200 with everything.
    return { body, start: rangeStart(res.ContentRange), length: res.ContentLength, etag: res.ETag };
  }

  function head({ sdk, client }: Connection, name: string, signal?: AbortSignal) {
    return alone(() => client.send(new sdk.HeadObjectCommand({ Bucket: opts.bucket, Key: name }), { abortSignal: signal }));
  }

  /** true/false when the server says; undefined when it won't (403 without s3:ListBucket). */
  async function exists(connection: Connection, name: string, signal?: AbortSignal): Promise<boolean | undefined> {
    try {
      await head(connection, name, signal);
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      if (statusOf(err) === 403) return undefined;
      throw err;
    }
  }

  return {
    location,

    async put(key: string, body: PutBody, options: PutOptions = {}): Promise<boolean> {
      const { signal } = options;
      signal?.throwIfAborted();
      const name = objectName(key);
      let connected: Connection | undefined;
      try {
        const connection = (connected = await connect());
        const { sdk, client } = connection;
        const to = { bucket: opts.bucket, name };
        // Skipping the upload is the common case on re-runs, and the only guard on servers
        // (s3rver, older MinIO) that ignore If-None-Match on writes.
        if ((await exists(connection, name, signal)) === true) return false;
        if (bodySize(body) > multipartThreshold) {
          // Each part is a request of its own, with its own retries: a 20% fault rate must not
          // mean sending a large body over and over.
          try {
            await withBudget(undefined, () => putMultipart(connection, to, body, partSize, signal));
          } catch (err) {
            // A completion whose answer was lost is retried by the SDK, and the server, having
            // completed it, no longer knows the upload (NoSuchUpload, or a 500 from s3rver).
            // The object being there whole is the answer the lost reply would have given.
            if (signal?.aborted || (await head(connection, name, signal).catch(() => undefined))?.ContentLength !== bodySize(body)) throw err;
          }
          return true;
        }
        // Object Lock buckets refuse uploads without an integrity checksum.
        const checksum = Buffer.from(options.sha256 ?? (await sha256Of(body))).toString("base64");
        if (isStreamBody(body)) await alone(() => putStream(connection, to, body, checksum, signal));
        else {
          const input = { Bucket: opts.bucket, Key: name, Body: body, ChecksumSHA256: checksum, IfNoneMatch: "*" };
          await alone(() => client.send(new sdk.PutObjectCommand(input), { abortSignal: signal }));
        }
        return true;
      } catch (err) {
        // 412: someone else's object was there first, unless an earlier attempt of ours failed
        // without an answer and may have landed: then it may be ours, and "stored" is the safe
        // answer (a caller that must know, like the prune lock, reads the object back).
        // 409: a concurrent conditional write is in flight; it is only "already there" once
        // that write has landed.
        if (statusOf(err) === 412) return attemptsOf(err) > 1;
        if (nameOf(err) === "ConditionalRequestConflict" && connected) {
          const landed = await exists(connected, name, signal).catch(() => undefined);
          if (landed === true) return false;
        }
        throw fail(err, key, "put", signal);
      }
    },

    async get(key: string, options: GetOptions = {}): Promise<Readable> {
      const { signal, range } = options;
      signal?.throwIfAborted();
      const name = objectName(key);
      if (range && !(range.offset >= 0 && range.length >= 0)) {
        throw new StoreError(location, key, `invalid range ${range.offset}+${range.length}`);
      }
      // One budget for the request and every resumption of its body.
      const budget = new RetryBudget(retry);
      try {
        const connection = await connect();
        if (range?.length === 0) {
          if ((await exists(connection, name, signal)) === false) throw notFound(location, key);
          return Readable.from([]);
        }
        const from = range?.offset ?? 0;
        const first = await getPart(connection, key, name, budget, signal, from, range ? from + range.length : undefined, undefined);
        if (first.start > from) {
          first.body.destroy();
          throw new Error(`server answered from offset ${first.start} for offset ${from}`);
        }
        return resumable(first, from, range?.length ?? Infinity, {
          budget, signal,
          fetch: (start, end, etag) =>
            getPart(connection, key, name, budget, signal, start, end, etag).catch((err: unknown) => {
              if (statusOf(err) === 412) throw changed(key, etag);
              throw fail(err, key, "get", signal, budget.attempts);
            }),
          fail: (cause) => fail(cause, key, "get", signal, budget.attempts),
        });
      } catch (err) {
        // 416: the range starts at or past the end, so the bytes that exist there are none.
        if (range && statusOf(err) === 416) return Readable.from([]);
        if (isMissingObject(err)) throw notFound(location, key, err);
        throw fail(err, key, "get", signal, budget.attempts);
      }
    },

    async stat(key: string, options: CallOptions = {}): Promise<ObjectInfo> {
      const { signal } = options;
      signal?.throwIfAborted();
      const name = objectName(key);
      try {
        const res = await head(await connect(), name, signal);
        return { key, size: res.ContentLength ?? 0, mtime: res.LastModified ?? new Date(0) };
      } catch (err) {
        if (isMissingObject(err)) throw notFound(location, key, err);
        throw fail(err, key, "stat", signal);
      }
    },

    async *list(listPrefix: string, options: CallOptions = {}): AsyncGenerator<ObjectInfo> {
      const { signal } = options;
      signal?.throwIfAborted();
      // Any prefix of a valid key is allowed: check it with a stand-in last character.
      if (listPrefix !== "") checkKey(location, `${listPrefix}_`);
      let token: string | undefined;
      do {
        let page;
        try {
          const { sdk, client } = await connect();
          const input = { Bucket: opts.bucket, Prefix: keyPrefix + listPrefix, ContinuationToken: token };
          // A budget per page: a long listing is many requests, each retried on its own.
          page = await alone(() => client.send(new sdk.ListObjectsV2Command(input), { abortSignal: signal }));
        } catch (err) {
          throw fail(err, listPrefix === "" ? undefined : listPrefix, "list", signal);
        }
        for (const object of page.Contents ?? []) {
          const key = object.Key?.slice(keyPrefix.length);
          // Folder markers (`blobs/`) and foreign objects with odd names are not ours to report.
          if (key === undefined || !isValidKey(key)) continue;
          yield { key, size: object.Size ?? 0, mtime: object.LastModified ?? new Date(0) };
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token !== undefined);
    },

    async delete(key: string, options: CallOptions = {}): Promise<void> {
      const { signal } = options;
      signal?.throwIfAborted();
      const name = objectName(key);
      try {
        const { sdk, client } = await connect();
        await alone(() => client.send(new sdk.DeleteObjectCommand({ Bucket: opts.bucket, Key: name }), { abortSignal: signal }));
      } catch (err) {
        if (statusOf(err) === 404) return;
        throw fail(err, key, "delete", signal);
      }
    },
  };
}

function rangeStart(contentRange: string | undefined): number {
  const match = /^bytes (\d+)-/.exec(contentRange ?? "");
  return match ? Number(match[1]) : 0;
}

function isValidKey(key: string): boolean {
  try {
    checkKey("", key);
    return true;
  } catch {
    return false;
  }
}
