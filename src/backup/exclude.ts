import { isAbsolute, relative, sep } from "node:path";
import ignore, { type Ignore } from "ignore";

// Exclude patterns follow .gitignore rules (the `ignore` package implements them), applied
// relative to each source directory: `*.log` matches at any depth, `node_modules/` only
// directories, `/build` only at the top of a source directory, `!keep.log` re-includes. An
// absolute pattern that lies inside a source directory is anchored there, because that is
// what people write in restic's exclude files. A leading "/" is read both ways, so the two
// promises meet: a pattern naming a path inside some source directory is that path (and
// concerns only that directory); any other is anchored at the top of every source directory.

export type Excluder = (absPath: string, isDir: boolean) => boolean;

export function makeExcluder(patterns: readonly string[], sourceDirs: readonly string[], alwaysExclude: readonly string[] = []): Excluder {
  const fixed = new Set(alwaysExclude);
  // Asked once per walked entry: without patterns, skip the relative path and the matcher.
  if (patterns.length === 0) return (absPath) => fixed.has(absPath);
  const perRoot = sourceDirs.map((root) => ({ root, matcher: matcherFor(root, patterns, sourceDirs) }));
  return (absPath, isDir) => {
    if (fixed.has(absPath)) return true;
    for (const { root, matcher } of perRoot) {
      if (absPath !== root && !absPath.startsWith(root.endsWith(sep) ? root : root + sep)) continue;
      const rel = relative(root, absPath).split(sep).join("/");
      if (rel === "") return false;
      return matcher.ignores(isDir ? `${rel}/` : rel);
    }
    return false;
  };
}

function matcherFor(root: string, patterns: readonly string[], sourceDirs: readonly string[]): Ignore {
  const m = ignore();
  for (const raw of patterns) {
    const negated = raw.startsWith("!");
    const body = negated ? raw.slice(1) : raw;
    if (isAbsolute(body) && body.length > 1 && sourceDirs.some((d) => within(d, body))) {
      // A path inside another source directory does not concern this one.
      if (!within(root, body)) continue;
      const rel = relative(root, body);
      if (rel === "") continue;
      m.add(`${negated ? "!" : ""}/${rel.split(sep).join("/")}${body.endsWith("/") ? "/" : ""}`);
    } else m.add(raw);
  }
  return m;
}

/** Whether `path` is `dir` or lies below it. */
function within(dir: string, path: string): boolean {
  const rel = relative(dir, path);
  return rel !== ".." && !rel.startsWith(`..${sep}`) && !isAbsolute(rel);
}
