import { homedir } from "node:os";
import { join } from "node:path";
import { parseSize } from "../config/units.js";
import { DEFAULT_CACHE_SIZE, SnapshotCache } from "../snapshot/cache.js";
import { asUsage } from "./context.js";
import type { ReadFlags } from "./options.js";

/**
 * The snapshot cache a command uses: VAULTIK_CACHE_DIR, else $XDG_CACHE_HOME/vaultik, else
 * ~/.cache/vaultik, bounded by VAULTIK_CACHE_SIZE (default 4 GiB). None with --no-cache, or
 * when the directory cannot be made private to this user (then each command downloads, as
 * restic does without its cache).
 */
export function cacheFor(flags: ReadFlags): SnapshotCache | undefined {
  if (flags.cache === false) return undefined;
  return SnapshotCache.open(cacheRoot(), cacheSize(process.env["VAULTIK_CACHE_SIZE"]));
}

/** This machine's cache directory: snapshot databases, and the last `check` of each repository. */
export function cacheRoot(): string {
  const env = process.env;
  return env["VAULTIK_CACHE_DIR"] || (env["XDG_CACHE_HOME"] ? join(env["XDG_CACHE_HOME"], "vaultik") : join(homedir(), ".cache", "vaultik"));
}

function cacheSize(raw: string | undefined): number {
  return raw === undefined || raw === "" ? DEFAULT_CACHE_SIZE : asUsage(() => parseSize(raw, "VAULTIK_CACHE_SIZE"));
}
