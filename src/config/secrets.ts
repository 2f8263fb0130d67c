import { resolve } from "node:path";
import { ConfigError } from "../errors.js";
import { type Context, readTextFile, resolvePath, type SecretReader } from "./context.js";
import { eitherNotBoth, optString } from "./values.js";
import { keyOf, type Section } from "./yaml.js";

// The one resolver of credentials, for config keys and for the CLI's environment alike, so a
// `*_FILE` variable means the same thing (and fails with the same message) wherever it is read.

export interface SecretSources {
  /** The value itself, as given (already trimmed). */
  value?: string;
  /** A file holding it, and the key that named the file (for errors). */
  file?: { path: string; key: string };
  /** Environment variable used when neither is given; then `<envVar>_FILE` (Docker secrets). */
  envVar: string;
}

/**
 * A credential from, in order: the value, the file, the environment variable, the file named by
 * `<envVar>_FILE`. An empty variable counts as unset. Errors name the key or variable, never the
 * secret; an empty file is an error, since it is surely a mistake and not "no credential".
 */
export function resolveSecret(sources: SecretSources, reader: SecretReader): string | undefined {
  return findSecret(sources, reader)?.value;
}

/** A credential and where it came from: `value`, the file's key, `envVar` or `<envVar>_FILE`. */
export function findSecret(sources: SecretSources, reader: SecretReader): { value: string; from: string } | undefined {
  if (sources.value !== undefined) return { value: sources.value, from: "value" };
  if (sources.file !== undefined) return { value: secretFromFile(reader, sources.file.path, sources.file.key), from: sources.file.key };
  const fromEnv = reader.env[sources.envVar]?.trim();
  if (fromEnv) return { value: fromEnv, from: sources.envVar };
  const fileVar = `${sources.envVar}_FILE`;
  const envFile = reader.env[fileVar];
  return envFile ? { value: secretFromFile(reader, resolve(envFile), fileVar), from: fileVar } : undefined;
}

/**
 * The credential at `key` in a config section, else its `_file` twin, else the environment.
 * Giving both the key and its `_file` twin is an error, since silently preferring one hides a
 * stale copy of the other.
 */
export function readSecret(s: Section, key: string, envVar: string, ctx: Context): string | undefined {
  const value = optString(s, key);
  const file = optString(s, `${key}_file`);
  if (value !== undefined && file !== undefined) throw eitherNotBoth(keyOf(s, key), `${key}_file`);
  return resolveSecret(
    { value, file: file === undefined ? undefined : { path: resolvePath(file, ctx), key: keyOf(s, `${key}_file`) }, envVar },
    ctx,
  );
}

function secretFromFile(reader: SecretReader, path: string, key: string): string {
  const secret = readTextFile(reader, path, key).trim();
  if (secret === "") throw new ConfigError(key, `${path} is empty`);
  return secret;
}
