import { createHash } from "node:crypto";
import { basename, extname, isAbsolute, join } from "node:path";
import { ConfigError } from "../errors.js";
import { fileUrlPath, isFileUrl, trimSlashes, urlScheme } from "../util/url.js";
import { type Context, home, resolvePath } from "./context.js";
import { readSecret } from "./secrets.js";
import type { StoreConfig } from "./types.js";
import { optBool, optString, optUrl } from "./values.js";
import { keyOf, type Section, subsection } from "./yaml.js";

// The `store` key and the `s3` section, read into the StoreLocation type the CLI opens (config/
// describes a repository; only the CLI and repo/ touch store/ at run time), and the default
// index path, which depends on it.

export function readStore(top: Section, ctx: Context): StoreConfig {
  const dir = optString(top, "store");
  const s3 = subsection(top, "s3");
  if (dir !== undefined && s3 !== undefined) throw new ConfigError("store", "give either store (a directory) or s3 (a bucket), not both");
  if (s3 !== undefined) return readS3(s3, ctx);
  if (dir === undefined) {
    throw new ConfigError("store", "required: give store (a directory, e.g. /var/backups/vaultik) or an s3 section");
  }
  return { kind: "fs", path: storeDirectory(dir, ctx) };
}

function storeDirectory(text: string, ctx: Context): string {
  if (isFileUrl(text)) {
    try {
      return fileUrlPath(text);
    } catch (err) {
      throw new ConfigError("store", `${JSON.stringify(text)} is not a local file:/// URL`, { cause: err });
    }
  }
  const scheme = urlScheme(text);
  if (scheme) throw new ConfigError("store", `${scheme}:// URLs are not supported here; use a directory, file:///…, or an s3 section`);
  return resolvePath(text, ctx);
}

function readS3(s: Section, ctx: Context): StoreConfig {
  return {
    kind: "s3",
    bucket: readBucket(s),
    prefix: trimSlashes(optString(s, "prefix") ?? ""),
    endpoint: optUrl(s, "endpoint", true),
    region: optString(s, "region"),
    accessKeyId: readSecret(s, "access_key_id", "AWS_ACCESS_KEY_ID", ctx),
    secretAccessKey: readSecret(s, "secret_access_key", "AWS_SECRET_ACCESS_KEY", ctx),
    forcePathStyle: optBool(s, "force_path_style"),
  };
}

function readBucket(s: Section): string {
  const bucket = optString(s, "bucket");
  if (bucket === undefined) throw new ConfigError(keyOf(s, "bucket"), "required when s3 is given");
  if (bucket.length < 3 || bucket.length > 63) {
    throw new ConfigError(keyOf(s, "bucket"), `must be 3 to 63 characters, got ${bucket.length} (${JSON.stringify(bucket)})`);
  }
  if (bucket.includes("/")) {
    throw new ConfigError(keyOf(s, "bucket"), `${JSON.stringify(bucket)} contains "/"; put the folder in s3.prefix`);
  }
  return bucket;
}

/**
 * The given path, else `$XDG_STATE_HOME/vaultik/<config name>-<hash12>.sqlite` (XDG base
 * directory spec). The hash covers the repository and the config file's absolute path: the file
 * name alone made `a/vaultik.yml` and `b/vaultik.yml` share one index and one lock, and a
 * config pointed at another repository must not deduplicate against blobs of the old one.
 */
export function readIndexPath(top: Section, ctx: Context, configPath: string | undefined, store: StoreConfig): string {
  const given = optString(top, "index_path");
  if (given !== undefined) return resolvePath(given, ctx);
  const xdg = ctx.env["XDG_STATE_HOME"];
  // The spec says to ignore a relative XDG_STATE_HOME.
  const stateHome = xdg && isAbsolute(xdg) ? xdg : join(home(ctx), ".local", "state");
  const repository = store.kind === "fs" ? ["fs", store.path] : ["s3", store.endpoint ?? "", store.bucket, store.prefix];
  // A config from the environment alone is named "env": one index per repository, like a file's.
  const hash = createHash("sha256").update(JSON.stringify({ repository, config: configPath ?? "env" })).digest("hex").slice(0, 12);
  const name = configPath === undefined ? "env" : basename(configPath, extname(configPath));
  return join(stateHome, "vaultik", `${name}-${hash}.sqlite`);
}
