import { readFileSync } from "node:fs";
import { loadConfig, type Config } from "../config/index.js";
import { findSecret } from "../config/secrets.js";
import { parseSize } from "../config/units.js";
import { parseIdentityFile, type X25519Identity } from "../crypto/keys.js";
import { ConfigError, UsageError } from "../errors.js";
import { Repository, type RepositoryOptions } from "../repo/repository.js";
import { locationFromArgs } from "../store/location.js";
import { openLocation } from "../store/open.js";
import type { Store } from "../store/store.js";

// Turns command-line arguments into the things commands work on: a repository (from
// `BUCKET [PREFIX]`, or `--config`), the identities for decryption, and the loaded config.

export interface RepoOptions {
  config?: string;
  indexPrefix?: string;
}

/** The store the config's `store` or `s3` section names. */
export function storeFromConfig(config: Config): Store {
  return openLocation(config.store);
}

/**
 * The repository named by `BUCKET [PREFIX]` at the front of `args` (or by `--config`), and the
 * arguments left over, which must be exactly `names` (e.g. SNAPSHOT_ID TARGET_DIR); a number
 * stands for that many unnamed ones. BUCKET is an S3 bucket name or `s3://NAME` (endpoint and
 * credentials from VAULTIK_S3_ENDPOINT and the standard AWS_* variables) or a local directory
 * (see localDirectory in store/location.ts). PREFIX is optional: it is there when the arguments
 * are one more than the command needs, or when the slot after BUCKET is an explicit `""`
 * (nothing a command needs may be empty, so `restore ./repo "" latest` is a missing
 * TARGET_DIR, not a prefix).
 */
export async function repoFromArgs(
  args: readonly string[],
  needed: number | readonly string[],
  options: RepoOptions,
): Promise<{ repo: Repository; rest: string[]; config?: Config }> {
  const names = typeof needed === "number" ? Array.from({ length: needed }, (_, i) => `argument ${i + 1}`) : needed;
  if (options.config !== undefined) {
    const config = await loadConfig(options.config);
    const rest = exactly(args, names, "--config FILE");
    return { repo: new Repository(storeFromConfig(config), options.indexPrefix ?? config.indexPrefix, repositoryLimits()), rest, config };
  }
  const [bucket, ...after] = args;
  if (bucket === undefined || bucket === "") {
    throw new UsageError("BUCKET", `missing; expected ${synopsis(names)}`);
  }
  const hasPrefix = after.length > names.length || (after.length === names.length && after.length > 0 && after[0] === "");
  const prefix = hasPrefix ? after[0]! : "";
  const rest = exactly(hasPrefix ? after.slice(1) : after, names, "BUCKET [PREFIX]");
  return { repo: new Repository(storeFromLocation(bucket, prefix), options.indexPrefix ?? "index/", repositoryLimits()), rest };
}

/** VAULTIK_MAX_SNAPSHOT_DB (a size such as `8GiB`): the most a snapshot database may decompress to. */
function repositoryLimits(): RepositoryOptions {
  const raw = process.env["VAULTIK_MAX_SNAPSHOT_DB"];
  if (raw === undefined || raw === "") return {};
  const maxSnapshotDb = asUsage(() => parseSize(raw, "VAULTIK_MAX_SNAPSHOT_DB"));
  if (maxSnapshotDb < 1) throw new UsageError("VAULTIK_MAX_SNAPSHOT_DB", `must be at least 1 byte, got ${JSON.stringify(raw)}`);
  return { maxSnapshotDb };
}

/** `args` when they are exactly `names`, none empty; else an error naming the first missing one. */
function exactly(args: readonly string[], names: readonly string[], repository: string): string[] {
  const usage = `expected ${synopsis(names, repository)}`;
  if (args.length < names.length) throw new UsageError(names[args.length]!, `missing; ${usage}`);
  if (args.length > names.length) throw new UsageError("arguments", `unexpected argument ${JSON.stringify(args[names.length])}; ${usage}`);
  const empty = args.findIndex((a) => a === "");
  if (empty >= 0) throw new UsageError(names[empty]!, `is empty; ${usage}`);
  return [...args];
}

function synopsis(names: readonly string[], repository = "BUCKET [PREFIX] (or --config FILE)"): string {
  return [repository, ...names].join(" ");
}

/**
 * The store `BUCKET [PREFIX]` names (see locationFromArgs). An S3 bucket's endpoint and
 * credentials come from VAULTIK_S3_ENDPOINT and the standard AWS_* variables (or their `*_FILE`
 * twins), read by the same resolver as the config's keys.
 */
export function storeFromLocation(bucket: string, prefix: string): Store {
  const location = locationFromArgs(bucket, prefix);
  if (location.kind === "fs") return openLocation(location);
  return openLocation({
    ...location,
    endpoint: process.env["VAULTIK_S3_ENDPOINT"] || undefined,
    accessKeyId: envSecret("AWS_ACCESS_KEY_ID")?.value,
    secretAccessKey: envSecret("AWS_SECRET_ACCESS_KEY")?.value,
  });
}

/**
 * `file` (an option's file), else the variable `name`, else the file `<name>_FILE` names, and
 * which of them it was.
 */
function envSecret(name: string, file?: { path: string; key: string }): { value: string; from: string } | undefined {
  return asUsage(() => findSecret({ envVar: name, file }, { env: process.env, readFile: (path) => readFileSync(path, "utf8") }));
}

/** `read()`, whose ConfigError is about an option or variable here, not the config file. */
export function asUsage<T>(read: () => T, argument?: string): T {
  try {
    return read();
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(argument ?? err.key, err.detail, { cause: err });
    throw err;
  }
}

/**
 * The private keys for decryption: `--identity FILE`, else `VAULTIK_PRIVATE_KEY` (the key
 * itself, or several lines of them), else `VAULTIK_PRIVATE_KEY_FILE`.
 */
export function loadIdentities(identityFile: string | undefined): X25519Identity[] {
  const file = identityFile === undefined ? undefined : { path: identityFile, key: "--identity" };
  const key = envSecret("VAULTIK_PRIVATE_KEY", file);
  if (key === undefined) {
    throw new UsageError(
      "VAULTIK_PRIVATE_KEY",
      "this command decrypts and needs the private key: set VAULTIK_PRIVATE_KEY, VAULTIK_PRIVATE_KEY_FILE or pass --identity FILE",
    );
  }
  return asUsage(() => parseIdentityFile(key.value, key.from), key.from);
}

/** Whether a private key is available, for commands where it only adds detail. */
export function hasIdentity(identityFile: string | undefined): boolean {
  return identityFile !== undefined || Boolean(process.env["VAULTIK_PRIVATE_KEY"] || process.env["VAULTIK_PRIVATE_KEY_FILE"]);
}
