import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { loadConfig, type Config } from "../config.js";
import { parseIdentityFile, type X25519Identity } from "../crypto/keys.js";
import { ConfigError } from "../errors.js";
import { Repository } from "../repo/repository.js";
import { openFsStore } from "../store/fs.js";
import { openS3Store } from "../store/s3.js";
import type { Store } from "../store/store.js";

// Turns command-line arguments into the things commands work on: a repository (from
// `BUCKET PREFIX`, or `--config`), the identities for decryption, and the loaded config.

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
 * The repository named by `BUCKET PREFIX` at the front of `args` (or by `--config`), and the
 * arguments left over. BUCKET is an S3 bucket name (endpoint and credentials from the standard
 * AWS_* variables and VAULTIK_S3_ENDPOINT), `s3://bucket`, or a local directory (`/path`,
 * `./path`, `file:///path`) for the embedded directory store.
 */
export async function repoFromArgs(
  args: readonly string[],
  needed: number,
  options: RepoOptions,
): Promise<{ repo: Repository; rest: string[]; config?: Config }> {
  if (options.config !== undefined) {
    const config = await loadConfig(options.config);
    if (args.length !== needed) throw usage(needed, args.length, true);
    return { repo: new Repository(storeFromConfig(config), options.indexPrefix ?? config.indexPrefix), rest: [...args], config };
  }
  if (args.length !== needed + 2) throw usage(needed, args.length, false);
  const [bucket, prefix, ...rest] = args as [string, string, ...string[]];
  return { repo: new Repository(storeFromLocation(bucket, prefix), options.indexPrefix ?? "index/"), rest };
}

function usage(needed: number, got: number, withConfig: boolean): ConfigError {
  const expected = withConfig ? `${needed} arguments after --config` : `BUCKET PREFIX and ${needed} more arguments`;
  return new ConfigError("arguments", `expected ${expected}, got ${got} (see --help)`);
}

export function storeFromLocation(bucket: string, prefix: string): Store {
  const cleanPrefix = prefix.replace(/^\/+|\/+$/g, "");
  if (bucket.startsWith("file:") || bucket.startsWith("/") || bucket.startsWith(".")) {
    const root = bucket.startsWith("file:") ? new URL(bucket).pathname : resolve(bucket);
    return openFsStore(cleanPrefix === "" ? root : resolve(root, cleanPrefix));
  }
  const name = bucket.startsWith("s3://") ? bucket.slice(5).replace(/\/+$/, "") : bucket;
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name)) {
    throw new ConfigError("BUCKET", `${JSON.stringify(bucket)} is not a valid S3 bucket name or a local path (/…, ./…, file://…)`);
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
    throw new ConfigError(name, `cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}

/**
 * The private keys for decryption: `--identity FILE`, else `VAULTIK_PRIVATE_KEY` (the key
 * itself, or several lines of them), else `VAULTIK_PRIVATE_KEY_FILE`.
 */
export function loadIdentities(identityFile: string | undefined): X25519Identity[] {
  if (identityFile !== undefined) return parseIdentityFile(readKeyFile(identityFile, "--identity"), "--identity");
  const inline = process.env["VAULTIK_PRIVATE_KEY"];
  if (inline) return parseIdentityFile(inline, "VAULTIK_PRIVATE_KEY");
  const file = process.env["VAULTIK_PRIVATE_KEY_FILE"];
  if (file) return parseIdentityFile(readKeyFile(file, "VAULTIK_PRIVATE_KEY_FILE"), "VAULTIK_PRIVATE_KEY_FILE");
  throw new ConfigError(
    "VAULTIK_PRIVATE_KEY",
    "this command decrypts and needs the private key: set VAULTIK_PRIVATE_KEY, VAULTIK_PRIVATE_KEY_FILE or pass --identity FILE",
  );
}

/** Whether a private key is available, for commands where it only adds detail. */
export function hasIdentity(identityFile: string | undefined): boolean {
  return identityFile !== undefined || Boolean(process.env["VAULTIK_PRIVATE_KEY"] || process.env["VAULTIK_PRIVATE_KEY_FILE"]);
}

function readKeyFile(path: string, key: string): string {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    throw new ConfigError(key, `cannot read identity file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
}
