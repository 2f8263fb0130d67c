import picomatch from "picomatch";
import type { SearchFilter } from "./read.js";

// `find` patterns: globs (picomatch). One without `/` matches an entry's base name, like
// `find -name`; one with `/` matches the whole snapshot path (a leading `/` is optional). Each
// is also turned into a looser SQL GLOB (LIKE for -i) that SQLite runs first, so only rows that
// may match reach JavaScript: on 50k rows per snapshot a JavaScript call per row was the cost.

export interface CompiledPatterns {
  /** Whether a snapshot path (no leading `/`) matches any pattern. */
  test(path: string): boolean;
  /** The SQL prefilter; undefined when some pattern cannot be narrowed (every row is a candidate). */
  names: SearchFilter["names"];
}

export function compilePatterns(patterns: readonly string[], caseless: boolean): CompiledPatterns {
  const options = { dot: true, nocase: caseless };
  const base: picomatch.Matcher[] = [];
  const whole: picomatch.Matcher[] = [];
  const names: NonNullable<SearchFilter["names"]>[number][] = [];
  let narrowed = true;
  for (const p of patterns) {
    const baseName = !p.includes("/");
    const glob = baseName ? p : p.replace(/^\/+/, "");
    (baseName ? base : whole).push(picomatch(glob, options));
    const sql = sqlPattern(glob, caseless);
    if (sql === (caseless ? "%" : "*")) narrowed = false;
    names.push({ pattern: sql, baseName, caseless });
  }
  return {
    test(path) {
      if (whole.some((m) => m(path))) return true;
      if (base.length === 0) return false;
      const name = path.slice(path.lastIndexOf("/") + 1);
      return base.some((m) => m(name));
    },
    names: narrowed ? names : undefined,
  };
}

/** Characters that start glob syntax this translation does not follow (classes, braces, extglobs, escapes). */
const UNFOLLOWED = new Set("[]{}()!+@|\\");

/**
 * A SQL GLOB (or LIKE, `caseless`) pattern that accepts every string the glob accepts, and
 * usually little more: the glob's literal runs in order, anything between them as `*`. SQL's
 * `*` also crosses `/`, and `?` becomes `*` because SQLite reads a byte that is not UTF-8
 * differently from vaultik's paths; from the first piece of syntax it does not follow, the rest
 * is `*`. LIKE folds ASCII case only, so with `caseless` a non-ASCII character is `%` too.
 */
export function sqlPattern(glob: string, caseless: boolean): string {
  const any = caseless ? "%" : "*";
  let out = "";
  const wildcard = () => {
    if (!out.endsWith(any) || out.endsWith("\\%")) out += any;
  };
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === "*" && glob[i + 1] === "*") {
      // A globstar also matches no directory at all: `a/**/b` matches `a/b`.
      if (out.endsWith("/")) out = out.slice(0, -1);
      while (glob[i + 1] === "*") i++;
      if (glob[i + 1] === "/") i++;
      wildcard();
    } else if (c === "*" || c === "?" || (caseless && c.charCodeAt(0) > 0x7f)) {
      wildcard();
    } else if (UNFOLLOWED.has(c)) {
      wildcard();
      break;
    } else {
      // GLOB's own syntax (`*?[`) never gets here; LIKE's does.
      out += caseless && (c === "%" || c === "_") ? `\\${c}` : c;
    }
  }
  return out;
}
