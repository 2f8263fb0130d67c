import { lstatSync, mkdirSync } from "node:fs";
import { dirname, join, normalize, sep } from "node:path";
import { IntegrityError } from "../errors.js";
import { displayPath, fsPath } from "../model/path-bytes.js";

// Snapshot metadata comes from the bucket, which a compromised source could have written. A path
// in it must never make a restore write outside the target: no absolute paths, no `..`, and no
// walking through a symlink, whether the target already held it or the restore made it. Paths
// here are internal strings (model/path-bytes): a name may hold bytes that are not UTF-8, or a
// newline; node:fs gets them as fsPath(), messages show them as displayPath().

/** Checks a snapshot path and returns its segments; "" (the target itself) only when allowed. */
export function pathSegments(path: string, object: string, allowEmpty = false): string[] {
  if (path === "" && allowEmpty) return [];
  const segs = path.split("/");
  if (path.startsWith("/") || path.includes("\0") || segs.some((s) => s === "" || s === "." || s === "..")) {
    throw new IntegrityError(object, `refusing path "${displayPath(path)}": it would escape the restore target`);
  }
  return segs;
}

/**
 * Joins paths below `root`, making sure every directory on the way exists and is a real
 * directory, not a symlink. Directories already checked are remembered.
 */
export class SafeTree {
  private readonly checked = new Set<string>();
  /** Directories this restore created: nothing was in them before. */
  private readonly fresh = new Set<string>();

  constructor(
    readonly root: string,
    private readonly object: string,
  ) {}

  /** Absolute destination of `rel` (already checked with pathSegments), parents made safe. */
  prepare(rel: string): string {
    const segs = pathSegments(rel, this.object, true);
    let dir = this.root;
    for (const seg of segs.slice(0, -1)) {
      dir = join(dir, seg);
      this.ensureDir(dir);
    }
    return segs.length === 0 ? this.root : join(this.root, ...segs);
  }

  /**
   * The same as prepare for a path whose parent prepare already made safe (a file's path seen in
   * pass 1), without redoing the walk; anything else goes through prepare.
   */
  resolve(rel: string): string {
    pathSegments(rel, this.object, true);
    const abs = join(this.root, rel);
    const parent = dirname(abs);
    return this.checked.has(parent) || this.fresh.has(parent) ? abs : this.prepare(rel);
  }

  /** Creates `dir` if needed and refuses it if it is (or became) anything but a directory. */
  ensureDir(dir: string): void {
    if (this.checked.has(dir)) return;
    try {
      mkdirSync(fsPath(dir), { mode: 0o700 });
      this.fresh.add(dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    }
    const st = lstatSync(fsPath(dir));
    if (!st.isDirectory()) {
      const what = st.isSymbolicLink() ? "a symlink" : "not a directory";
      throw new IntegrityError(this.object, `refusing to restore through ${displayPath(dir)}: it is ${what}`);
    }
    this.checked.add(dir);
  }

  /** Marks a directory as created by this restore (the target itself, when it was made). */
  markFresh(dir: string): void {
    this.fresh.add(normalize(dir).replace(/(.)\/+$/, "$1"));
  }

  isFresh(dir: string): boolean {
    return this.fresh.has(dir);
  }

  isInside(abs: string): boolean {
    return abs === this.root || abs.startsWith(this.root.endsWith(sep) ? this.root : this.root + sep);
  }
}
