import { readFileSync, statSync } from "node:fs";
import { resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig, type Config } from "../config.js";
import { parseIdentityFile, type X25519Identity } from "../crypto/keys.js";
import { ConfigError, UsageError } from "../errors.js";
import { Repository } from "../repo/repository.js";
import { openFsStore } from "../store/fs.js";
import { openS3Store } from "../store/s3.js";
import type { Store } from "../store/store.js";

// Turns command-line arguments into the things commands work on: a repository (from
// `BUCKET [PREFIX]`, or `--config`), the identities for decryption, and the loaded config.

export interface RepoOptions {
  config?: string;
  indexPrefix?: string;
}

export function storeFromConfig(config: Config): Store {
  const s = config.store;
  if (s.kind === "fs") return openFsStore(s.path);
  return openS3Store({
    bucket: s.bucket,
    prefix: s.prefix,
    endpoint: s.endpoint,
    region: s.region,
    accessKeyId: s.accessKeyId,
    secretAccessKey: s.secretAccessKey,
    forcePathStyle: s.forcePathStyle,
  });
}

/**
 * The repository named by `BUCKET [PREFIX]` at the front of `args` (or by `--config`), and the
 * arguments left over, which must be exactly `names` (e.g. SNAPSHOT_ID TARGET_DIR); a number
 * stands for that many unnamed ones. BUCKET is an S3 bucket name or `s3://NAME` (endpoint and
 * credentials from VAULTIK_S3_ENDPOINT and the standard AWS_* variables) or a local directory
 * (see localDirectory). PREFIX is optional: it is there when the arguments are one more than
 * the command needs, or when the slot after BUCKET is an explicit `""` (nothing a command
 * needs may be empty, so `restore ./repo "" latest` is a missing TARGET_DIR, not a prefix).
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
    return { repo: new Repository(storeFromConfig(config), options.indexPrefix ?? config.indexPrefix), rest, config };
  }
  const [bucket, ...after] = args;
  if (bucket === undefined || bucket === "") {
    throw new UsageError("BUCKET", `missing; expected ${synopsis(names)}`);
  }
  const hasPrefix = after.length > names.length || (after.length === names.length && after.length > 0 && after[0] === "");
  const prefix = hasPrefix ? after[0]! : "";
  const rest = exactly(hasPrefix ? after.slice(1) : after, names, "BUCKET [PREFIX]");
  return { repo: new Repository(storeFromLocation(bucket, prefix), options.indexPrefix ?? "index/"), rest };
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
 * The directory BUCKET names, or undefined for an S3 bucket. A directory is `file://…`, a path
 * with a `/` in it (`/srv/repo`, `./repo`, `backups/repo`: bucket names never contain one), one
 * starting with `.`, or a name that is an existing directory; `s3://NAME` is always a bucket.
 */
export function localDirectory(bucket: string): string | undefined {
  if (bucket.startsWith("s3://")) return undefined;
  if (bucket.startsWith("file:")) return fileURLToPath(bucket);
  if (bucket.includes("/") || bucket.startsWith(".") || isDirectory(bucket)) return resolve(bucket);
  return undefined;
}

function isDirectory(path: string): boolean {
  return statSync(path, { throwIfNoEntry: false })?.isDirectory() ?? false;
}

export function storeFromLocation(bucket: string, prefix: string): Store {
  const cleanPrefix = prefix.replace(/^\/+|\/+$/g, "");
  const root = localDirectory(bucket);
  if (root !== undefined) return openFsStore(cleanPrefix === "" ? root : resolve(root, cleanPrefix));
  const name = bucket.startsWith("s3://") ? bucket.slice(5).replace(/\/+$/, "") : bucket;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name)) {
    throw new UsageError("BUCKET", `${JSON.stringify(bucket)} is not an S3 bucket name, nor a local directory (/…, ./…, dir/…, file://…, or an existing directory)`);
  }
  const env = process.env;
  return openS3Store({
    bucket: name,
    prefix: cleanPrefix,
    endpoint: env["VAULTIK_S3_ENDPOINT"] || undefined,
    accessKeyId: env["AWS_ACCESS_KEY_ID"] ?? fromFileVar("AWS_ACCESS_KEY_ID_FILE"),
    secretAccessKey: env["AWS_SECRET_ACCESS_KEY"] ?? fromFileVar("AWS_SECRET_ACCESS_KEY_FILE"),
  });
}

function fromFileVar(name: string): string | undefined {
  const path = process.env[name];
  if (!path) return undefined;
  try {
    return readFileSync(path, "utf8").trim();
  } catch (err) {
    throw new UsageError(name, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * The private keys for decryption: `--identity FILE`, else `VAULTIK_PRIVATE_KEY` (the key
 * itself, or several lines of them), else `VAULTIK_PRIVATE_KEY_FILE`.
 */
export function loadIdentities(identityFile: string | undefined): X25519Identity[] {
  if (identityFile !== undefined) return parseIdentities(readKeyFile(identityFile, "--identity"), "--identity");
  const inline = process.env["VAULTIK_PRIVATE_KEY"];
  if (inline) return parseIdentities(inline, "VAULTIK_PRIVATE_KEY");
  const file = process.env["VAULTIK_PRIVATE_KEY_FILE"];
  if (file) return parseIdentities(readKeyFile(file, "VAULTIK_PRIVATE_KEY_FILE"), "VAULTIK_PRIVATE_KEY_FILE");
  throw new UsageError(
    "VAULTIK_PRIVATE_KEY",
    "this command decrypts and needs the private key: set VAULTIK_PRIVATE_KEY, VAULTIK_PRIVATE_KEY_FILE or pass --identity FILE",
  );
}

/** The key parser speaks of config keys; here the key came from an option or the environment. */
function parseIdentities(text: string, source: string): X25519Identity[] {
  try {
    return parseIdentityFile(text, source);
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(source, err.detail, { cause: err });
    throw err;
  }
}

/** Whether a private key is available, for commands where it only adds detail. */
export function hasIdentity(identityFile: string | undefined): boolean {
  return identityFile !== undefined || Boolean(process.env["VAULTIK_PRIVATE_KEY"] || process.env["VAULTIK_PRIVATE_KEY_FILE"]);
}

function readKeyFile(path: string, key: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new UsageError(key, `cannot read identity file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
