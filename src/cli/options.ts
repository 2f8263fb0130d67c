import type { Command } from "commander";

// Options every command that reads a repository on the recovery machine shares, and the split
// of its positional arguments into the repository and the rest.

export interface ReadFlags {
  config?: string;
  identity?: string;
  indexPrefix?: string;
  host?: string;
  json?: boolean;
  /** commander's `--no-cache`: false when given. */
  cache?: boolean;
}

/** -c/--config, --identity, --index-prefix, --host, --json and --no-cache. */
export function readOptions(cmd: Command, json = "print JSON"): Command {
  return cmd
    .option("-c, --config <file>", "take the repository from this config instead of BUCKET [PREFIX]")
    .option("--identity <file>", "age identity file (default: VAULTIK_PRIVATE_KEY or VAULTIK_PRIVATE_KEY_FILE)")
    .option("--index-prefix <prefix>", "where snapshots live in the repository")
    .option("--host <host>", "with `latest`: the latest snapshot of this host")
    .option("--json", json)
    .option("--no-cache", "download snapshot databases again instead of using the local cache (VAULTIK_CACHE_DIR)");
}

/**
 * Splits off trailing snapshot paths: up to `max` last arguments that start with `/`. A path in
 * a snapshot is given absolute (`/home/me`), which is how it tells itself from BUCKET, PREFIX
 * and snapshot ids, none of which start with `/`... except a local repository directory, which
 * is always the first argument and never taken here.
 */
export function trailingPaths(args: readonly string[], max: number, keep = 1): { rest: string[]; paths: string[] } {
  const rest = [...args];
  const paths: string[] = [];
  while (paths.length < max && rest.length > keep && rest[rest.length - 1]!.startsWith("/")) paths.unshift(rest.pop()!);
  return { rest, paths };
}
