import { createHash } from "node:crypto";
import { Readable, Transform, pipeline } from "node:stream";
import type { Connection } from "./s3-client.js";
import { messageOf } from "./errors.js";
import { bodySize, isStreamBody } from "./store.js";
import type { PutBody, StreamBody } from "./store.js";

// The two ways a body goes up: one PutObject (a stream opened afresh per attempt), or a
// multipart upload for large bodies. Both are conditional (If-None-Match: *), so a put never
// replaces an object.

/** Where an object goes. */
export interface Target {
  bucket: string;
  /** The object's full name in the bucket, prefix included. */
  name: string;
}

// Stands in for a stream body until each attempt opens the real one (see putStream).
const DEFERRED_BODY = Object.freeze({ deferred: true });

/**
 * PutObject of a stream, opened afresh for every attempt. The SDK refuses to retry a request
 * whose body is a stream (it would be spent), so the body it sees is a placeholder until the
 * deserialize step, which runs inside the retry loop once per attempt and after signing
 * (which for a non-buffer body signs UNSIGNED-PAYLOAD, never the bytes).
 */
export async function putStream(
  { sdk, client }: Connection,
  to: Target,
  body: StreamBody,
  checksum: string,
  signal?: AbortSignal,
): Promise<void> {
  const stopped = new AbortController();
  const relay = () => stopped.abort(signal?.reason);
  if (signal?.aborted) relay();
  signal?.addEventListener("abort", relay, { once: true });
  let bodyError: unknown;
  let current: Readable | undefined;
  const command = new sdk.PutObjectCommand({
    Bucket: to.bucket, Key: to.name, Body: Readable.from([]), ContentLength: body.size,
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
export async function putMultipart({ client }: Connection, to: Target, body: PutBody, partSize: number, signal?: AbortSignal): Promise<void> {
  const { Upload } = await import("@aws-sdk/lib-storage");
  const upload = new Upload({
    client,
    queueSize: 2,
    partSize,
    params: {
      Bucket: to.bucket, Key: to.name, ContentLength: bodySize(body),
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

export async function sha256Of(body: PutBody): Promise<Uint8Array> {
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
