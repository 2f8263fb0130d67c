import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

// The layering of src/ as a checked fact, not a hope (issue 13): every import points down (or
// stays in its own folder), nothing imports in a cycle, and only repo/ opens the store.
// Type-only imports count too: a type that lives above its user pins the user to that layer.

const SRC = resolve(dirname(fileURLToPath(import.meta.url)), "../src");

/** Folder (or top-level module) → layer; an import may only go to a lower layer or its own folder. */
const LAYER: Record<string, number> = {
  "errors.ts": 0,
  "version.ts": 0,
  util: 1,
  model: 1,
  store: 2,
  crypto: 2,
  chunk: 2,
  pack: 3,
  catalog: 3,
  repo: 4,
  snapshot: 5,
  backup: 6,
  restore: 6,
  prune: 6,
  check: 6,
  config: 7,
  daemon: 8,
  serve: 8.5,
  cli: 9,
  "index.ts": 10,
};

/** Outside cli/ (which builds stores from what the user typed), only repo/ may use store/ at run time. */
const STORE_USERS = new Set(["repo", "store", "cli", "index.ts"]);

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sourceFiles(p);
    return e.name.endsWith(".ts") ? [p] : [];
  });
}

function unitOf(file: string): string {
  return relative(SRC, file).split("/")[0]!;
}

interface Edge {
  from: string;
  to: string;
  typeOnly: boolean;
}

function imports(): Edge[] {
  const edges: Edge[] = [];
  for (const file of sourceFiles(SRC)) {
    const text = readFileSync(file, "utf8");
    for (const m of text.matchAll(/^\s*(import|export)\s+(type\s+)?[^;]*?from\s+"(\.{1,2}\/[^"]+)"/gms)) {
      const target = resolve(dirname(file), m[3]!).replace(/\.js$/, ".ts");
      edges.push({ from: file, to: target, typeOnly: m[2] !== undefined });
    }
    for (const m of text.matchAll(/new URL\("(\.{1,2}\/[^"]+)\.js", import\.meta\.url\)/g)) {
      edges.push({ from: file, to: resolve(dirname(file), `${m[1]!}.ts`), typeOnly: false });
    }
  }
  return edges;
}

const rel = (f: string): string => relative(SRC, f);

describe("the import graph of src/", () => {
  const edges = imports();

  it("knows every top-level folder and module", () => {
    const units = new Set(sourceFiles(SRC).map(unitOf));
    expect([...units].filter((u) => LAYER[u] === undefined)).toEqual([]);
  });

  it("points only downwards (or within a folder)", () => {
    const up = edges
      .filter((e) => unitOf(e.from) !== unitOf(e.to) && LAYER[unitOf(e.to)]! >= LAYER[unitOf(e.from)]!)
      .map((e) => `${rel(e.from)} -> ${rel(e.to)}`);
    expect(up).toEqual([]);
  });

  it("has no cycle between modules", () => {
    const next = new Map<string, string[]>();
    for (const e of edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
    const cycles: string[] = [];
    const state = new Map<string, "open" | "done">();
    const stack: string[] = [];
    const visit = (f: string): void => {
      state.set(f, "open");
      stack.push(f);
      for (const t of next.get(f) ?? []) {
        if (state.get(t) === "open") cycles.push([...stack.slice(stack.indexOf(t)), t].map(rel).join(" -> "));
        else if (!state.has(t)) visit(t);
      }
      stack.pop();
      state.set(f, "done");
    };
    for (const f of next.keys()) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });

  it("lets only repo/ (and the CLI, which opens what the user names) use the store at run time", () => {
    const users = edges
      .filter((e) => !e.typeOnly && unitOf(e.to) === "store" && !STORE_USERS.has(unitOf(e.from)))
      .map((e) => `${rel(e.from)} -> ${rel(e.to)}`);
    expect(users).toEqual([]);
  });
});
