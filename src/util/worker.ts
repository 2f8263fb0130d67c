import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";

/**
 * The compiled worker script `relative` to the calling module, or undefined when running from
 * TypeScript sources (tests), where callers do the same work on the main thread instead.
 */
export function compiledWorker(moduleUrl: string, relative: string): URL | undefined {
  const url = new URL(relative, moduleUrl);
  return moduleUrl.endsWith(".js") && existsSync(fileURLToPath(url)) ? url : undefined;
}
