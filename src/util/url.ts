import { resolve } from "node:path";
import { fileURLToPath } from "node:url";

// The URL grammar shared by every place a repository location is written (the CLI's BUCKET,
// openStore's URL, the config's `store` key), so `file:` and `scheme://` mean the same in each.

/** The scheme of `scheme://…` text as written, or undefined for a plain path. */
export function urlScheme(text: string): string | undefined {
  return /^([a-z][a-z0-9+.-]*):\/\//i.exec(text)?.[1];
}

/** Whether `text` is a `file:` URL (file:///abs, file:/abs). */
export function isFileUrl(text: string): boolean {
  return text.startsWith("file:");
}

/** The absolute path of a `file:` URL; throws a TypeError for a remote one (file://host/…). */
export function fileUrlPath(text: string): string {
  return resolve(fileURLToPath(text));
}

/** A folder inside a bucket in the form keys are built from: no "/" at either end. */
export function trimSlashes(text: string): string {
  return text.replace(/^\/+|\/+$/g, "");
}
