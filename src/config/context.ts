import { homedir } from "node:os";
import { resolve } from "node:path";
import { ConfigError } from "../errors.js";

// What reading a config may touch besides its text: its directory, the environment, files.

/** The environment and a file reader: all that resolving a secret needs. */
export interface SecretReader {
  env: NodeJS.ProcessEnv;
  readFile: (path: string) => string;
}

export interface Context extends SecretReader {
  /** The config file's directory: relative paths resolve against it. */
  dir: string;
}

/** `~` is the home directory; other relative paths resolve against the config's directory. */
export function resolvePath(text: string, ctx: Context): string {
  if (text === "~" || text.startsWith("~/")) return resolve(home(ctx), text.slice(2));
  return resolve(ctx.dir, text);
}

export function home(ctx: SecretReader): string {
  return ctx.env["HOME"] || homedir();
}

export function readTextFile(reader: SecretReader, path: string, key: string): string {
  try {
    return reader.readFile(path);
  } catch (err) {
    throw new ConfigError(key, `cannot read ${path}: ${fsReason(err)}`, { cause: err });
  }
}

/** A file error as a few words, without the path Node puts in its message (we print our own). */
export function fsReason(err: unknown): string {
  const code = err instanceof Error ? (err as NodeJS.ErrnoException).code : undefined;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "EISDIR") return "is a directory";
  return code ?? "unreadable";
}
