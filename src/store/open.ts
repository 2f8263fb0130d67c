import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ConfigError } from "../errors.js";
import { openFsStore } from "./fs.js";
import { openS3Store } from "./s3.js";
import type { S3StoreOptions } from "./s3.js";
import type { Store } from "./store.js";

/**
 * Opens a repository by URL: `s3://bucket/prefix`, `file:///abs/path` or a plain path. S3
 * settings the URL cannot carry (endpoint, keys, tuning) come from `s3` and then the
 * environment; `VAULTIK_S3_ENDPOINT` names a non-AWS endpoint.
 */
export function openStore(url: string, s3: Partial<S3StoreOptions> = {}): Store {
  if (url.startsWith("s3://")) {
    const rest = url.slice("s3://".length);
    const slash = rest.indexOf("/");
    const bucket = slash < 0 ? rest : rest.slice(0, slash);
    if (bucket === "") throw new ConfigError("repository", `no bucket in ${url}`);
    return openS3Store({
      ...s3,
      bucket,
      prefix: slash < 0 ? "" : rest.slice(slash + 1),
      endpoint: s3.endpoint ?? (process.env["VAULTIK_S3_ENDPOINT"] || undefined),
    });
  }
  if (url.startsWith("file:")) return openFsStore(fileURLToPath(url));
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  if (scheme) throw new ConfigError("repository", `unsupported scheme ${scheme[1]}:// in ${url} (use s3:// or a path)`);
  if (url === "") throw new ConfigError("repository", "empty repository location");
  return openFsStore(resolve(url));
}
