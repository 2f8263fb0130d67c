import { StoreError } from "../errors.js";

/**
 * Rejects keys that could escape a directory store or mean different objects on different
 * backends: absolute, empty segments, `.`/`..`, backslashes, NUL.
 */
export function checkKey(location: string, key: string): void {
  const bad =
    key.length === 0 ||
    key.startsWith("/") ||
    key.includes("\\") ||
    key.includes("\0") ||
    key.split("/").some((seg) => seg === "" || seg === "." || seg === "..");
  if (bad) throw new StoreError(location, key, "invalid object key");
}
