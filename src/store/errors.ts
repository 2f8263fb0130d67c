import { NotFoundError, StoreError, VaultikError } from "../errors.js";

// How the drivers turn what the OS or the S3 SDK threw into the Store contract's errors (see
// store.ts): an abort is reported as the abort, our own errors pass through, a missing object is
// a NotFoundError, everything else a StoreError naming the store and key, with the driver's
// error as `cause`. One module, so fs.ts and s3.ts cannot drift apart on those rules.

/** Where a failure happened, as the drivers know it. */
export interface FailureContext {
  /** The store's secret-free name. */
  location: string;
  key: string | undefined;
  /** When it has fired, the failure is the abort's doing: its reason is reported instead. */
  signal?: AbortSignal;
}

/** The store's own error for `err`, with `message` saying what went wrong. */
function failure(ctx: FailureContext, err: unknown, message: (err: unknown) => string): Error {
  if (ctx.signal?.aborted) return ctx.signal.reason as Error;
  if (err instanceof VaultikError) return err;
  return new StoreError(ctx.location, ctx.key, message(err), { cause: err });
}

export function notFound(location: string, key: string, cause?: unknown): NotFoundError {
  return new NotFoundError(`${location} ${key}`, "not found", { cause });
}

export function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === "string" ? code : undefined;
}

export function messageOf(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  return err.message || (err instanceof AggregateError ? err.errors.map(messageOf).join("; ") : err.name);
}

// ---- local filesystems

/** A missing file, or a path component that is a file rather than a directory. */
export function isAbsent(err: unknown): boolean {
  const code = codeOf(err);
  return code === "ENOENT" || code === "ENOTDIR";
}

/** The device has no room (or the user no quota) left. */
const FULL = new Set(["ENOSPC", "EDQUOT", "EFBIG"]);

/** A failed `action` on `path`; a full disk is said plainly, since the fix is the user's. */
export function diskFailure(ctx: FailureContext, action: string, path: string, err: unknown): Error {
  return failure(ctx, err, (e) => {
    const code = codeOf(e);
    if (code === undefined || !FULL.has(code)) return `cannot ${action} ${path}: ${messageOf(e)}`;
    return (
      `cannot ${action} ${path}: the disk holding the repository is full (${code}); nothing was stored under this name. ` +
      "Free space there and run the backup again"
    );
  });
}

// ---- S3 and compatible servers

export interface RemoteContext extends FailureContext {
  /** The endpoint, without credentials, named when it cannot be reached. */
  endpoint: string;
  /** Scrubbed from every message, however unlikely an SDK message is to quote one. */
  secrets: readonly string[];
  /** Requests made before giving up; default: what the SDK recorded on `err`. */
  attempts?: number;
}

/** Failures that mean the endpoint itself is unreachable, so the message should name it. */
const CONNECTION_CODES = new Set([
  "ECONNREFUSED", "ECONNRESET", "ENOTFOUND", "EAI_AGAIN", "ETIMEDOUT",
  "EHOSTUNREACH", "ENETUNREACH", "EPIPE", "ECONNABORTED", "CERT_HAS_EXPIRED",
  "DEPTH_ZERO_SELF_SIGNED_CERT", "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
]);

/** A failed request (`action`: put, get, list…) to the server. */
export function remoteFailure(ctx: RemoteContext, action: string, err: unknown): Error {
  return failure(ctx, err, (e) => {
    const status = statusOf(e);
    const attempts = ctx.attempts ?? attemptsOf(e);
    // Said only when there were retries: a 403 is not retried, and "after 1 attempt" is noise.
    const after = attempts > 1 ? ` after ${attempts} attempts` : "";
    const message = isConnectionFailure(e)
      ? `cannot reach ${ctx.endpoint}${after}: ${messageOf(e)}`
      : `${action} failed${after}: ${nameOf(e)}${status ? ` (HTTP ${status})` : ""}: ${messageOf(e)}`;
    return scrub(message, ctx.secrets);
  });
}

function isConnectionFailure(err: unknown): boolean {
  const e = err as { code?: unknown; name?: unknown; errors?: unknown[] } | null;
  if (e?.name === "TimeoutError") return true;
  if (typeof e?.code === "string" && CONNECTION_CODES.has(e.code)) return true;
  // Node's happy-eyeballs connect reports every address tried in an AggregateError.
  return Array.isArray(e?.errors) && e.errors.some(isConnectionFailure);
}

/** A missing key; a missing bucket is also 404, but it is a broken configuration. */
export function isMissingObject(err: unknown): boolean {
  return (statusOf(err) === 404 || nameOf(err) === "NoSuchKey") && nameOf(err) !== "NoSuchBucket";
}

export function statusOf(err: unknown): number | undefined {
  return (err as { $metadata?: { httpStatusCode?: number } } | null)?.$metadata?.httpStatusCode;
}

/** How many requests the SDK made for the call that threw `err`; 1 when it did not say. */
export function attemptsOf(err: unknown): number {
  return (err as { $metadata?: { attempts?: number } } | null)?.$metadata?.attempts ?? 1;
}

export function nameOf(err: unknown): string {
  return err instanceof Error ? err.name : "Error";
}

function scrub(message: string, secrets: readonly string[]): string {
  return secrets.reduce((text, secret) => text.split(secret).join("***"), message);
}
