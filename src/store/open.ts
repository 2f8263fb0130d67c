import { openFsStore } from "./fs.js";
import { parseStoreUrl, type StoreLocation } from "./location.js";
import { openS3Store, type S3StoreOptions } from "./s3.js";
import type { Store } from "./store.js";

// The registry: each kind of location opened by its driver, in one place, whether the location
// came from a config file, the command line or a URL.

/** Opens the store a location names. */
export function openLocation(location: StoreLocation): Store {
  switch (location.kind) {
    case "fs":
      return openFsStore(location.path);
    case "s3": {
      const { kind: _, ...options } = location;
      return openS3Store(options);
    }
  }
}

/**
 * Opens a repository by URL: `s3://bucket/prefix`, `file:///abs/path` or a plain path. S3
 * settings the URL cannot carry (endpoint, keys, tuning) come from `s3` and then the
 * environment; `VAULTIK_S3_ENDPOINT` names a non-AWS endpoint.
 */
export function openStore(url: string, s3: Partial<S3StoreOptions> = {}): Store {
  const location = parseStoreUrl(url);
  if (location.kind === "fs") return openLocation(location);
  return openS3Store({
    ...s3,
    bucket: location.bucket,
    prefix: location.prefix,
    endpoint: s3.endpoint ?? (process.env["VAULTIK_S3_ENDPOINT"] || undefined),
  });
}
