import { LineCounter, parseDocument } from "yaml";
import { ConfigError, errorMessage } from "../errors.js";
import { CONFIG_KEYS } from "./keys.js";

// The strict YAML reader: a mapping's keys are checked against the key table, and an unknown
// key is an error with a "did you mean" hint rather than a warning nobody reads under cron.

/** A YAML mapping being read: `path` is shown in errors, `schema` finds its keys in CONFIG_KEYS. */
export interface Section {
  path: string;
  schema: string;
  values: Record<string, unknown>;
}

export function parseYaml(text: string, path: string): unknown {
  const lineCounter = new LineCounter();
  // prettyErrors would append the offending source line, which may hold a secret.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const [error] = doc.errors;
  if (error) {
    const { line, col } = lineCounter.linePos(error.pos[0]);
    throw new ConfigError("config", `${path}: YAML syntax error at line ${line}, column ${col}: ${error.message}`);
  }
  try {
    return doc.toJS();
  } catch (err) {
    throw new ConfigError("config", `${path}: ${errorMessage(err)}`);
  }
}

export function asSection(raw: unknown, path: string, schema: string): Section {
  if (!isMapping(raw)) {
    if (path !== "") throw wrongType(path, "a mapping", raw);
    const expected = "a mapping of settings such as age_recipient, source_dirs and store";
    if (raw === null || raw === undefined) throw new ConfigError("config", `the file is empty; expected ${expected}`);
    throw wrongType("config", expected, raw);
  }
  const known = knownKeys(schema);
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) throw unknownKey(path === "" ? key : `${path}.${key}`, key, known);
  }
  return { path, schema, values: raw };
}

function knownKeys(schema: string): string[] {
  const names = CONFIG_KEYS.flatMap(({ key }) => {
    if (schema === "") return [key];
    return key.startsWith(`${schema}.`) ? [key.slice(schema.length + 1)] : [];
  }).map((rest) => rest.split(/[.[]/)[0] ?? rest);
  return [...new Set(names)];
}

function unknownKey(path: string, key: string, known: readonly string[]): ConfigError {
  const guess = closest(key, known);
  return new ConfigError(path, guess === undefined ? "unknown key" : `unknown key (did you mean ${guess}?)`);
}

/** The known key within edit distance 2 of `key`, ignoring case, if there is one. */
export function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const d = editDistance(key.toLowerCase(), candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitute = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(substitute, (previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

export function keyOf(s: Section, key: string): string {
  return s.path === "" ? key : `${s.path}.${key}`;
}

/** The value at `key`; an empty value (`key:` and nothing after it) counts as not given. */
export function valueOf(s: Section, key: string): unknown {
  const v = s.values[key];
  return v === null ? undefined : v;
}

export function subsection(s: Section, key: string): Section | undefined {
  const raw = valueOf(s, key);
  return raw === undefined ? undefined : asSection(raw, keyOf(s, key), s.schema === "" ? key : `${s.schema}.${key}`);
}

export function wrongType(key: string, expected: string, got: unknown): ConfigError {
  const quoteHint = expected === "a string" && (typeof got === "number" || typeof got === "boolean") ? " (put it in quotes)" : "";
  const listHint = expected.startsWith("a list") && typeof got === "string" ? " (write [item] for a single item)" : "";
  return new ConfigError(key, `expected ${expected}, got ${typeName(got)}${quoteHint}${listHint}`);
}

export function typeName(v: unknown): string {
  if (v === null || v === undefined) return "nothing";
  if (Array.isArray(v)) return "a list";
  if (isMapping(v)) return "a mapping";
  if (typeof v === "object") return "a YAML-tagged value";
  return typeof v === "string" ? "a string" : typeof v === "boolean" ? "a boolean" : "a number";
}

/** A non-secret value as a user wrote it, for messages about numbers and durations. */
export function describe(v: unknown): string {
  return typeof v === "string" || typeof v === "number" ? JSON.stringify(v) : typeName(v);
}

export function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}
