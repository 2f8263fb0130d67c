import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ConfigError } from "../errors.js";

/**
 * The compiled worker script `relative` to the calling module, or undefined when running from
 * TypeScript sources (tests), where callers do the same work on the main thread instead.
 */
export function compiledWorker(moduleUrl: string, relative: string): URL | undefined {
  const url = new URL(relative, moduleUrl);
  return moduleUrl.endsWith(".js") && existsSync(fileURLToPath(url)) ? url : undefined;
}

/** A thread count from the environment variable `name`, or `fallback` when it is unset. */
export function threadsFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 0 || n > 64) throw new ConfigError(name, `must be a whole number from 0 to 64, got ${JSON.stringify(raw)}`);
  return n;
}
