import { UsageError } from "../errors.js";
import { parseSnapshotId } from "../model/snapshot-id.js";

// The checks of every parameter a request carries (docs/SERVE.md, "Parameters"). A parameter
// that fails is a UsageError, which the server answers with 400; none reaches a store key or
// the file system unchecked.

export const REPO_SLUG = /^[a-z0-9][a-z0-9._-]{0,63}$/;
const HOST = /^[A-Za-z0-9.-]{1,64}$/;
const ASSET = /^[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}$/;
const MAX_PATH = 4096;
const MAX_PATTERN = 256;

export function repoParam(text: string): string {
  if (!REPO_SLUG.test(text)) throw new UsageError("repo", "is not a repository name (see /api/overview)");
  return text;
}

export function hostParam(text: string): string {
  if (!HOST.test(text)) throw new UsageError("host", "is not a host name of a snapshot id");
  return text;
}

export function idParam(text: string, name = "id"): string {
  if (parseSnapshotId(text) === undefined) throw new UsageError(name, "is not a full snapshot id");
  return text;
}

export function assetParam(text: string): string {
  if (!ASSET.test(text)) throw new UsageError("asset", "is not an asset name");
  return text;
}

/** An absolute snapshot path, `/` repeated collapsed; no NUL, no `.` or `..` component. */
export function pathParam(text: string | null): string {
  if (text === null || text === "") return "/";
  if (text.length > MAX_PATH) throw new UsageError("path", `is longer than ${MAX_PATH} characters`);
  if (!text.startsWith("/")) throw new UsageError("path", "must start with /");
  if (text.includes("\0")) throw new UsageError("path", "must not hold NUL");
  const parts = text.split("/").filter((p) => p !== "");
  if (parts.some((p) => p === "." || p === "..")) throw new UsageError("path", "must not hold . or .. components");
  return `/${parts.join("/")}`;
}

export function patternParam(text: string | null): string {
  if (text === null || text === "") throw new UsageError("q", "is missing: a pattern such as *.pdf");
  if (text.length > MAX_PATTERN) throw new UsageError("q", `is longer than ${MAX_PATTERN} characters`);
  if (text.includes("\0")) throw new UsageError("q", "must not hold NUL");
  return text;
}

/** The path's segments, each percent-decoded; undefined when one does not decode. */
export function pathSegments(pathname: string): string[] | undefined {
  try {
    return pathname.split("/").slice(1).map((s) => decodeURIComponent(s));
  } catch {
    return undefined;
  }
}
