import { statSync } from "node:fs";
import { resolve } from "node:path";
import { ConfigError, UsageError } from "../errors.js";
import { fileUrlPath, isFileUrl, trimSlashes, urlScheme } from "../util/url.js";

// Where a repository lives, as a typed value: what the user typed (the CLI's BUCKET [PREFIX], an
// openStore URL) or configured (config/store.ts builds the same type) is parsed into one of
// these, and store/open.ts opens it. Parsing reads no secrets: callers add credentials.

/** A repository in a local directory. */
export interface FsLocation {
  kind: "fs";
  /** Absolute directory. */
  path: string;
}

/** A repository under a folder of an S3 (or S3-compatible) bucket. */
export interface S3Location {
  kind: "s3";
  bucket: string;
  /** Folder inside the bucket, without leading or trailing "/"; "" for the bucket root. */
  prefix: string;
  /** Endpoint of a non-AWS S3 service; undefined means AWS. */
  endpoint?: string;
  region?: string;
  accessKeyId?: string;
  secretAccessKey?: string;
  /** Address buckets as `endpoint/bucket` (MinIO, s3rver) instead of `bucket.endpoint`. */
  forcePathStyle?: boolean;
}

export type StoreLocation = FsLocation | S3Location;

/**
 * A repository URL: `s3://bucket/prefix`, `file:///abs/path` or a plain path (relative to the
 * working directory). Errors are labelled `repository`.
 */
export function parseStoreUrl(url: string): StoreLocation {
  if (url.startsWith("s3://")) {
    const rest = url.slice("s3://".length);
    const slash = rest.indexOf("/");
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    if (bucket === "") throw new ConfigError("repository", `no bucket in ${url}`);
    return { kind: "s3", bucket, prefix: slash < 0 ? "" : trimSlashes(rest.slice(slash + 1)) };
  }
  if (isFileUrl(url)) return { kind: "fs", path: fileUrlPath(url) };
  const scheme = urlScheme(url);
  if (scheme) throw new ConfigError("repository", `unsupported scheme ${scheme}:// in ${url} (use s3:// or a path)`);
  if (url === "") throw new ConfigError("repository", "empty repository location");
  return { kind: "fs", path: resolve(url) };
}

/**
 * The repository named by the CLI's `BUCKET [PREFIX]`: a local directory (see localDirectory,
 * PREFIX then names a subdirectory) or an S3 bucket name or `s3://NAME` (PREFIX the folder
 * inside it). Endpoint and credentials are not part of what was typed; the caller adds them.
 */
export function locationFromArgs(bucket: string, prefix: string): StoreLocation {
  const cleanPrefix = trimSlashes(prefix);
  const root = localDirectory(bucket);
  if (root !== undefined) return { kind: "fs", path: cleanPrefix === "" ? root : resolve(root, cleanPrefix) };
  const name = bucket.startsWith("s3://") ? bucket.slice(5).replace(/\/+$/, "") : bucket;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name)) {
    throw new UsageError("BUCKET", `${JSON.stringify(bucket)} is not an S3 bucket name, nor a local directory (/…, ./…, dir/…, file://…, or an existing directory)`);
  }
  return { kind: "s3", bucket: name, prefix: cleanPrefix };
}

/**
 * The directory BUCKET names, or undefined for an S3 bucket. A directory is `file://…`, a path
 * with a `/` in it (`/srv/repo`, `./repo`, `backups/repo`: bucket names never contain one), one
 * starting with `.`, or a name that is an existing directory; `s3://NAME` is always a bucket.
 */
export function localDirectory(bucket: string): string | undefined {
  if (bucket.startsWith("s3://")) return undefined;
  if (isFileUrl(bucket)) return fileUrlPath(bucket);
  if (bucket.includes("/") || bucket.startsWith(".") || isDirectory(bucket)) return resolve(bucket);
  return undefined;
}

function isDirectory(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}
