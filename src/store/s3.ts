import { Readable, Transform } from "node:stream";
import { StoreError } from "../errors.js";
import { isMissingObject, nameOf, notFound, remoteFailure, statusOf } from "./errors.js";
import { checkKey } from "./keys.js";
import { endpointOf, lazyConnection, type Connection, type S3StoreOptions } from "./s3-client.js";
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
  const connect = lazyConnection(opts, endpoint);
  const multipartThreshold = opts.multipartThreshold ?? 64 * MiB;
  const partSize = opts.partSize ?? 16 * MiB;
  // Anything that could leak into an SDK message is scrubbed from ours, however unlikely.
  const secrets = [opts.secretAccessKey, opts.sessionToken, env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"]]
    .filter((s): s is string => s !== undefined && s.length >= 8);

  function objectName(key: string): string {
    checkKey(location, key);
    return keyPrefix + key;
  }

  function fail(err: unknown, key: string | undefined, action: string, signal?: AbortSignal): Error {
    return remoteFailure({ location, key, signal, endpoint: endpoint.name, secrets }, action, err);
  }

  /** true/false when the server says; undefined when it won't (403 without s3:ListBucket). */
  async function exists({ sdk, client }: Connection, name: string, signal?: AbortSignal): Promise<boolean | undefined> {
    try {
      await client.send(new sdk.HeadObjectCommand({ Bucket: opts.bucket, Key: name }), { abortSignal: signal });
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
          await putMultipart(connection, to, body, partSize, signal);
          return true;
        }
        // Object Lock buckets refuse uploads without an integrity checksum.
        const checksum = Buffer.from(options.sha256 ?? (await sha256Of(body))).toString("base64");
        if (isStreamBody(body)) await putStream(connection, to, body, checksum, signal);
        else {
          const input = { Bucket: opts.bucket, Key: name, Body: body, ChecksumSHA256: checksum, IfNoneMatch: "*" };
          await client.send(new sdk.PutObjectCommand(input), { abortSignal: signal });
        }
        return true;
      } catch (err) {
        // 412: someone else's object was there first. 409: a concurrent conditional write is
        // in flight; it is only "already there" once that write has landed.
        if (statusOf(err) === 412) return false;
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
      try {
        const connection = await connect();
        const { sdk, client } = connection;
        if (range?.length === 0) {
          if ((await exists(connection, name, signal)) === false) throw notFound(location, key);
          return Readable.from([]);
        }
        const res = await client.send(
          new sdk.GetObjectCommand({
            Bucket: opts.bucket, Key: name,
            Range: range ? `bytes=${range.offset}-${range.offset + range.length - 1}` : undefined,
          }),
          { abortSignal: signal },
        );
        // Trim to what was asked: some servers answer a range with more (s3rver sends the
        // whole object for `bytes=0-0`) or ignore it and send 200 with everything.
        const start = range ? rangeStart(res.ContentRange) : 0;
        const skip = range ? range.offset - start : 0;
        const body = res.Body as Readable;
        if (skip < 0) {
          body.destroy();
          throw new Error(`server answered range ${res.ContentRange ?? "?"} for offset ${range?.offset}`);
        }
        return guard(body, skip, range?.length ?? Infinity, (err) => fail(err, key, "get", signal));
      } catch (err) {
        // 416: the range starts at or past the end, so the bytes that exist there are none.
        if (range && statusOf(err) === 416) return Readable.from([]);
        if (isMissingObject(err)) throw notFound(location, key, err);
        throw fail(err, key, "get", signal);
      }
    },

    async stat(key: string, options: CallOptions = {}): Promise<ObjectInfo> {
      const { signal } = options;
      signal?.throwIfAborted();
      const name = objectName(key);
      try {
        const { sdk, client } = await connect();
        const res = await client.send(new sdk.HeadObjectCommand({ Bucket: opts.bucket, Key: name }), { abortSignal: signal });
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
          page = await client.send(new sdk.ListObjectsV2Command(input), { abortSignal: signal });
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
        await client.send(new sdk.DeleteObjectCommand({ Bucket: opts.bucket, Key: name }), { abortSignal: signal });
      } catch (err) {
        if (statusOf(err) === 404) return;
        throw fail(err, key, "delete", signal);
      }
    },
  };
}

/**
 * Drops `skip` bytes, passes at most `take`, and turns a mid-stream failure (connection reset)
 * into the store's own error so callers can tell it from corrupt data.
 */
function guard(source: Readable, skip: number, take: number, wrap: (err: unknown) => Error): Readable {
  let pos = 0;
  const out = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      const from = Math.max(0, skip - pos);
      const to = Math.min(chunk.byteLength, skip + take - pos);
      pos += chunk.byteLength;
      done(null, from < to ? chunk.subarray(from, to) : undefined);
    },
  });
  source.once("error", (err) => out.destroy(wrap(err)));
  out.once("close", () => source.destroy());
  return source.pipe(out);
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
