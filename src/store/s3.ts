import { createHash } from "node:crypto";
import { Readable, Transform, pipeline } from "node:stream";
import type { S3Client } from "@aws-sdk/client-s3";
import { NotFoundError, StoreError, VaultikError } from "../errors.js";
import { checkKey } from "./keys.js";
import { bodySize, isStreamBody } from "./store.js";
import type { CallOptions, GetOptions, ObjectInfo, PutBody, PutOptions, Store, StreamBody } from "./store.js";

export interface S3StoreOptions {
  bucket: string;
  /** Key prefix inside the bucket; "", "backups" and "backups/" are all accepted. */
  prefix?: string;
  /** For MinIO, R2, B2, Ceph, Garage… Default: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, then AWS. */
  endpoint?: string;
  /** Default: AWS_REGION, AWS_DEFAULT_REGION, then "us-east-1". */
  region?: string;
  /** Without both keys the SDK's standard chain is used (environment, profile, SSO, IMDS…). */
  accessKeyId?: string;
  secretAccessKey?: string;
  sessionToken?: string;
  /** `https://host/bucket` addressing. Default: true when a custom endpoint is set. */
  forcePathStyle?: boolean;
  /** Bodies larger than this go up as multipart uploads. Default 64 MiB. */
  multipartThreshold?: number;
  /** Multipart part size, at least 5 MiB. Default 16 MiB. */
  partSize?: number;
  /** Attempts per request including the SDK's retries on throttling and 5xx. Default 4. */
  maxAttempts?: number;
}

type Sdk = typeof import("@aws-sdk/client-s3");

const MiB = 1024 * 1024;

// Stands in for a stream body until each attempt opens the real one (see putStream).
const DEFERRED_BODY = Object.freeze({ deferred: true });

// Failures that mean the endpoint itself is unreachable, so the message should name it.
const CONNECTION_CODES = new Set([
  "ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT",
  "EHOSTUNREACH", "ENETUNREACH", "EPIPE", "ECONNABORTED", "CERT_HAS_EXPIRED",
  "DEPTH_ZERO_SELF_SIGNED_CERT", "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
]);

/** A repository under `prefix` in an S3 (or S3-compatible) bucket. */
export function openS3Store(opts: S3StoreOptions): Store {
  const env = process.env;
  const prefix = (opts.prefix ?? "").replace(/^\/+|\/+$/g, "");
  const keyPrefix = prefix === "" ? "" : `${prefix}/`;
  const location = `s3://${opts.bucket}${prefix === "" ? "" : `/${prefix}`}`;
  if (prefix !== "") checkKey(location, prefix);
  const region = opts.region ?? env["AWS_REGION"] ?? env["AWS_DEFAULT_REGION"] ?? "us-east-1";
  const endpoint = opts.endpoint ?? env["AWS_ENDPOINT_URL_S3"] ?? env["AWS_ENDPOINT_URL"];
  const endpointName = describeEndpoint(endpoint, region);
  const multipartThreshold = opts.multipartThreshold ?? 64 * MiB;
  const partSize = opts.partSize ?? 16 * MiB;
  // Anything that could leak into an SDK message is scrubbed from ours, however unlikely.
  const secrets = [opts.secretAccessKey, opts.sessionToken, env["AWS_SECRET_ACCESS_KEY"], env["AWS_SESSION_TOKEN"]]
    .filter((s): s is string => s !== undefined && s.length >= 8);

  let loading: Promise<{ sdk: Sdk; client: S3Client }> | undefined;
  // The SDK costs a few hundred ms to import; a run against a local repository never pays it.
  function connect(): Promise<{ sdk: Sdk; client: S3Client }> {
    loading ??= import("@aws-sdk/client-s3").then((sdk) => ({
      sdk,
      client: new sdk.S3Client({
        region,
        endpoint,
        forcePathStyle: opts.forcePathStyle ?? endpoint !== undefined,
        followRegionRedirects: true,
        maxAttempts: opts.maxAttempts ?? 4,
        credentials:
          opts.accessKeyId && opts.secretAccessKey
            ? { accessKeyId: opts.accessKeyId, secretAccessKey: opts.secretAccessKey, sessionToken: opts.sessionToken }
            : undefined,
        // By default the SDK streams bodies as aws-chunked with a CRC32 trailer, which older
        // S3-compatible servers (s3rver included) store verbatim, framing and all. We always
        // send an explicit x-amz-checksum-sha256 header instead, so nothing is lost.
        requestChecksumCalculation: "WHEN_REQUIRED",
        responseChecksumValidation: "WHEN_REQUIRED",
        requestHandler: { connectionTimeout: 10_000, socketTimeout: 120_000 },
      }),
    }));
    return loading;
  }

  function objectName(key: string): string {
    checkKey(location, key);
    return keyPrefix + key;
  }

  function fail(err: unknown, key: string | undefined, action: string, signal?: AbortSignal): Error {
    if (signal?.aborted) return signal.reason as Error;
    if (err instanceof VaultikError) return err;
    const status = statusOf(err);
    const message = isConnectionFailure(err)
      ? `cannot reach ${endpointName}: ${messageOf(err)}`
      : `${action} failed: ${nameOf(err)}${status ? ` (HTTP ${status})` : ""}: ${messageOf(err)}`;
    return new StoreError(location, key, scrub(message, secrets), { cause: err });
  }

  function notFound(key: string, cause?: unknown): NotFoundError {
    return new NotFoundError(`${location} ${key}`, "not found", { cause });
  }

  /** true/false when the server says; undefined when it won't (403 without s3:ListBucket). */
  async function exists(client: S3Client, sdk: Sdk, name: string, signal?: AbortSignal): Promise<boolean | undefined> {
    try {
      await client.send(new sdk.HeadObjectCommand({ Bucket: opts.bucket, Key: name }), { abortSignal: signal });
      return true;
    } catch (err) {
      if (statusOf(err) === 404) return false;
      if (statusOf(err) === 403) return undefined;
      throw err;
    }
  }

  /**
   * PutObject of a stream, opened afresh for every attempt. The SDK refuses to retry a request
   * whose body is a stream (it would be spent), so the body it sees is a placeholder until the
   * deserialize step, which runs inside the retry loop once per attempt and after signing
   * (which for a non-buffer body signs UNSIGNED-PAYLOAD, never the bytes).
   */
  async function putStream(client: S3Client, sdk: Sdk, name: string, body: StreamBody, checksum: string, signal?: AbortSignal): Promise<void> {
    const stopped = new AbortController();
    const relay = () => stopped.abort(signal?.reason);
    if (signal?.aborted) relay();
    signal?.addEventListener("abort", relay, { once: true });
    let bodyError: unknown;
    let current: Readable | undefined;
    const command = new sdk.PutObjectCommand({
      Bucket: opts.bucket, Key: name, Body: Readable.from([]), ContentLength: body.size,
      ChecksumSHA256: checksum, IfNoneMatch: "*",
    });
    const setBody = (args: { request: unknown }, value: unknown) => {
      (args.request as { body?: unknown }).body = value;
    };
    command.middlewareStack.add(
      (next) => (args) => {
        setBody(args, DEFERRED_BODY);
        return next(args);
      },
      { step: "build", priority: "low", name: "vaultikDeferBody" },
    );
    command.middlewareStack.add(
      (next) => (args) => {
        current?.destroy();
        current = exactly(body.open(), body.size);
        // The SDK pipes the body without watching it; an error would otherwise hang the request.
        current.once("error", (err) => {
          bodyError ??= err;
          stopped.abort(err);
        });
        setBody(args, current);
        return next(args);
      },
      { step: "deserialize", priority: "low", name: "vaultikOpenBody" },
    );
    try {
      await client.send(command, { abortSignal: stopped.signal });
    } catch (err) {
      throw bodyError === undefined ? err : new Error(`reading the body: ${messageOf(bodyError)}`, { cause: bodyError });
    } finally {
      signal?.removeEventListener("abort", relay);
      current?.destroy();
    }
  }

  /**
   * lib-storage buffers each part, so its own retries work on streams. With SHA256 every part
   * carries a checksum (S3 combines them; there is no whole-object SHA-256 for multipart), and
   * IfNoneMatch reaches CompleteMultipartUpload, where S3 applies it.
   */
  async function putMultipart(client: S3Client, name: string, body: PutBody, signal?: AbortSignal): Promise<void> {
    const { Upload } = await import("@aws-sdk/lib-storage");
    const upload = new Upload({
      client,
      queueSize: 2,
      partSize,
      params: {
        Bucket: opts.bucket, Key: name, ContentLength: bodySize(body),
        Body: isStreamBody(body) ? exactly(body.open(), body.size) : body,
        ChecksumAlgorithm: "SHA256", IfNoneMatch: "*",
      },
    });
    const relay = () => void upload.abort();
    signal?.addEventListener("abort", relay, { once: true });
    try {
      await upload.done();
    } finally {
      signal?.removeEventListener("abort", relay);
    }
  }

  return {
    location,

    async put(key: string, body: PutBody, options: PutOptions = {}): Promise<boolean> {
      const { signal } = options;
      signal?.throwIfAborted();
      const name = objectName(key);
      let connected: { sdk: Sdk; client: S3Client } | undefined;
      try {
        const { sdk, client } = (connected = await connect());
        // Skipping the upload is the common case on re-runs, and the only guard on servers
        // (s3rver, older MinIO) that ignore If-None-Match on writes.
        if ((await exists(client, sdk, name, signal)) === true) return false;
        if (bodySize(body) > multipartThreshold) {
          await putMultipart(client, name, body, signal);
          return true;
        }
        // Object Lock buckets refuse uploads without an integrity checksum.
        const checksum = Buffer.from(options.sha256 ?? (await sha256Of(body))).toString("base64");
        if (isStreamBody(body)) await putStream(client, sdk, name, body, checksum, signal);
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
          const landed = await exists(connected.client, connected.sdk, name, signal).catch(() => undefined);
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
        const { sdk, client } = await connect();
        if (range?.length === 0) {
          if ((await exists(client, sdk, name, signal)) === false) throw notFound(key);
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
        if (isMissing(err)) throw notFound(key, err);
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
        if (isMissing(err)) throw notFound(key, err);
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

async function sha256Of(body: PutBody): Promise<Uint8Array> {
  const hash = createHash("sha256");
  if (!isStreamBody(body)) return hash.update(body).digest();
  for await (const chunk of exactly(body.open(), body.size)) hash.update(chunk as Buffer);
  return hash.digest();
}

/** Passes `source` through, failing if it yields other than exactly `size` bytes. */
function exactly(source: Readable, size: number): Readable {
  let seen = 0;
  const check = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      seen += chunk.byteLength;
      done(seen > size ? new Error(`body yielded more than the declared ${size} bytes`) : null, chunk);
    },
    flush(done) {
      done(seen === size ? null : new Error(`body yielded ${seen} bytes, declared ${size}`));
    },
  });
  return pipeline(source, check, () => {});
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

function describeEndpoint(endpoint: string | undefined, region: string): string {
  if (endpoint === undefined) return `https://s3.${region}.amazonaws.com`;
  try {
    const url = new URL(endpoint);
    url.username = "";
    url.password = "";
    return url.href.replace(/\/$/, "");
  } catch {
    return endpoint;
  }
}

function isConnectionFailure(err: unknown): boolean {
  const e = err as { code?: unknown; name?: unknown; errors?: unknown[] } | null;
  if (e?.name === "TimeoutError") return true;
  if (typeof e?.code === "string" && CONNECTION_CODES.has(e.code)) return true;
  // Node's happy-eyeballs connect reports every address tried in an AggregateError.
  return Array.isArray(e?.errors) && e.errors.some(isConnectionFailure);
}

/** A missing key; a missing bucket is also 404, but it is a broken configuration. */
function isMissing(err: unknown): boolean {
  return (statusOf(err) === 404 || nameOf(err) === "NoSuchKey") && nameOf(err) !== "NoSuchBucket";
}

function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

function nameOf(err: unknown): string {
  return err instanceof Error ? err.name : "Error";
}

function messageOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  return err.message || (err instanceof AggregateError ? err.errors.map(messageOf).join("; ") : err.name);
}

function scrub(message: string, secrets: readonly string[]): string {
  return secrets.reduce((text, secret) => text.split(secret).join("***"), message);
}
