// Range bounds for "everything below a path" in an index on path text: every path under
// `dir/` sorts after `dir/` and before `dir0` ("/" + 1 = "0"), so a B-tree range scan finds
// them without LIKE (which would also misread `%` and `_` in file names).

/** [low, high): exclusive bounds of the paths strictly below `dir` (with or without a trailing "/"). */
export function belowBounds(dir: string): [string, string] {
  const base = dir.endsWith("/") ? dir.slice(0, -1) : dir;
  return [`${base}/`, `${base}0`];
}
