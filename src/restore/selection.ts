import ignore, { type Ignore } from "ignore";
import { NotFoundError } from "../errors.js";
import { parseDisplayPath } from "../model/path-bytes.js";
import { didYouMean, nearestPaths } from "../snapshot/nearest.js";
import type { SnapshotReader } from "../snapshot/read.js";

// `restore --include/--exclude`: gitignore-style patterns, as the config's `exclude` is (the
// `ignore` package), matched against snapshot paths from the snapshot root: `*.log` matches at
// any depth, `/home/me` only at the top, `logs/` only directories. A pattern that matches a
// directory matches everything below it. An entry is selected when it is included (or no
// --include is given) and not excluded: exclude wins, as in restic.

export class Selection {
  readonly #includes: { pattern: string; matcher: Ignore; matched: boolean }[];
  readonly #exclude: Ignore | undefined;

  constructor(include: readonly string[], exclude: readonly string[]) {
    this.#includes = include.map((pattern) => ({ pattern, matcher: ignore().add(pattern), matched: false }));
    this.#exclude = exclude.length === 0 ? undefined : ignore().add([...exclude]);
  }

  /** Whether the entry at snapshot path `path` ("" is the root) is selected. */
  selects(path: string, isDir: boolean): boolean {
    if (path === "") return false;
    const key = isDir ? `${path}/` : path;
    let included = this.#includes.length === 0;
    // Every include is asked, so each one that matches anything is known (unmatched()).
    for (const inc of this.#includes) {
      if (inc.matcher.ignores(key)) included = inc.matched = true;
    }
    return included && !(this.#exclude?.ignores(key) ?? false);
  }

  /**
   * Throws for the first --include that has matched no entry: restoring nothing is not what was
   * asked. A pattern that is a plain path (no wildcard) names the nearest existing paths.
   */
  assertAllMatched(snapshot: SnapshotReader): void {
    const unmatched = this.#includes.find((i) => !i.matched);
    if (!unmatched) return;
    const literal = !/[*?[\]!]/.test(unmatched.pattern);
    const near = literal ? nearestPaths(snapshot, parseDisplayPath(unmatched.pattern.replace(/^\/+|\/+$/g, ""))) : [];
    throw new NotFoundError(`--include ${unmatched.pattern}`, `matches nothing in snapshot ${snapshot.meta.id}${near.length > 0 ? didYouMean(near) : ""}`);
  }
}
