import { parseDocument } from "yaml";
import { ConfigError } from "../errors.js";
import { CONFIG_KEYS } from "./keys.js";
import type { ConfigKeyInfo } from "./types.js";
import { closest, isMapping } from "./yaml.js";

// Container-first config: every key in CONFIG_KEYS has a VAULTIK_ variable derived from its
// name, laid over the raw YAML object before the strict checks, so a file, the environment or
// both go through one validation path and keys added to the table get a variable for free.
// A variable beats the file's key (docker run -e over a baked-in file, as with restic's
// RESTIC_* variables); the older fallbacks (AWS_*, …) stay below both, read by the key readers.

/**
 * VAULTIK_ variables that are not config keys: read by the CLI (keys, cache, S3 tuning), set for
 * hooks, or used by tests. Typos are caught only among variables that look like config keys,
 * and these must never be mistaken for one.
 */
export const OTHER_VARIABLES: readonly string[] = [
  "VAULTIK_PRIVATE_KEY", "VAULTIK_PRIVATE_KEY_FILE", "VAULTIK_S3_ENDPOINT", "VAULTIK_MAX_SNAPSHOT_DB",
  "VAULTIK_CACHE_DIR", "VAULTIK_CACHE_SIZE", "VAULTIK_WORKERS", "VAULTIK_RESTORE_WRITERS",
  "VAULTIK_S3_RETRY_BASE_MS", "VAULTIK_S3_RETRY_TOTAL_MS", "VAULTIK_S3_TIMEOUT_MS", "VAULTIK_THREAD_TIMES", "VAULTIK_DEBUG",
  // Set for hooks (backup/job.ts, daemon/daemon.ts): a hook that runs vaultik must not trip on them.
  "VAULTIK_CONFIG", "VAULTIK_STATUS", "VAULTIK_SNAPSHOT_ID", "VAULTIK_ERROR", "VAULTIK_RUN", "VAULTIK_APP",
  "VAULTIK_FAULT_SEED",
];

/** Test points and test tools (VAULTIK_TEST_CRASH_AT, …): never config, whatever follows. */
const OTHER_PREFIX = "VAULTIK_TEST_";

const PREFIX = "VAULTIK_";

/** The key that holds `key`'s variable: list items and map entries live in their owner's. */
export function variableOwner(key: string): string {
  return key.split(/\[\]|\.\*/)[0] ?? key;
}

/** `s3.bucket` → VAULTIK_S3_BUCKET; `commands[].run` → VAULTIK_COMMANDS. */
export function envVariable(key: string): string {
  return PREFIX + variableOwner(key).toUpperCase().replaceAll(".", "_");
}

/** How a key is set from the environment: its own variable, its sub-keys', or its owner's. */
export type EnvForm = "value" | "flow" | "section" | "inside";

export function envForm(info: ConfigKeyInfo): EnvForm {
  if (variableOwner(info.key) !== info.key) return "inside";
  if (CONFIG_KEYS.some((k) => k.key.startsWith(`${info.key}[]`) || k.key.startsWith(`${info.key}.*`))) return "flow";
  if (CONFIG_KEYS.some((k) => k.key.startsWith(`${info.key}.`))) return "section";
  return "value";
}

/** What the raw object became, and which dotted keys came from which variable (for errors). */
export interface Overlaid {
  raw: unknown;
  origins: Map<string, string>;
  /** Whether any variable set a key. */
  used: boolean;
}

/** Lays the VAULTIK_ variables in `env` over `raw` (the parsed YAML, or undefined without a file). */
export function overlayEnv(raw: unknown, env: NodeJS.ProcessEnv): Overlaid {
  checkVariableNames(env);
  const origins = new Map<string, string>();
  const set = CONFIG_KEYS.filter((k) => env[envVariable(k.key)] && (envForm(k) === "value" || envForm(k) === "flow"));
  if (set.length === 0) return { raw, origins, used: false };
  // An empty file plus variables is a config; a file that is not a mapping fails the usual check.
  const top: Record<string, unknown> = raw === undefined || raw === null ? {} : (raw as Record<string, unknown>);
  if (!isMapping(top)) return { raw, origins, used: false };
  for (const info of set) {
    const variable = envVariable(info.key);
    const parts = info.key.split(".");
    const name = parts.pop()!;
    const section = sectionFor(top, parts, variable, env, origins);
    if (section === undefined) continue;
    const twin = name.endsWith("_file") ? name.slice(0, -"_file".length) : `${name}_file`;
    const twinKey = [...parts, twin].join(".");
    if (CONFIG_KEYS.some((k) => k.key === twinKey)) {
      if (origins.has(twinKey)) throw new ConfigError(origins.get(twinKey)!, `give either ${origins.get(twinKey)} or ${variable}, not both`);
      delete section[twin];
    }
    section[name] = convert(info, env[variable]!, variable);
    origins.set(info.key, variable);
    replaceAlternative(top, info.key, variable, origins);
  }
  return { raw: top, origins, used: true };
}

/**
 * The mapping at `parts`, made when a variable needs it. A section with a required key (s3
 * needs bucket, status needs listen) is made only by that key's variable: VAULTIK_S3_ENDPOINT is
 * also the CLI's own, and VAULTIK_STATUS_TOKEN alone never turned the status server on.
 */
function sectionFor(top: Record<string, unknown>, parts: string[], variable: string, env: NodeJS.ProcessEnv, origins: Map<string, string>): Record<string, unknown> | undefined {
  let at = top;
  for (let i = 0; i < parts.length; i++) {
    const key = parts.slice(0, i + 1).join(".");
    const name = parts[i]!;
    const current = at[name];
    if (current === undefined || current === null) {
      const required = CONFIG_KEYS.filter((k) => k.required && k.key.startsWith(`${key}.`) && !k.key.slice(key.length + 1).includes("."));
      if (required.length > 0 && !required.some((k) => env[envVariable(k.key)])) return undefined;
      at[name] = {};
      origins.set(key, variable);
      replaceAlternative(top, key, variable, origins);
    } else if (!isMapping(current)) {
      return undefined; // the file's own error (expected a mapping) is the one to show
    }
    at = at[name] as Record<string, unknown>;
  }
  return at;
}

/** Keys that exclude each other: a variable for one replaces the file's other. */
const ALTERNATIVES: readonly (readonly [string, string])[] = [["store", "s3"]];

function replaceAlternative(top: Record<string, unknown>, key: string, variable: string, origins: Map<string, string>): void {
  for (const pair of ALTERNATIVES) {
    const i = pair.indexOf(key);
    if (i < 0) continue;
    const other = pair[1 - i]!;
    if (origins.has(other)) {
      throw new ConfigError(variable, `give either ${origins.get(other)} or ${variable}, not both`);
    }
    delete top[other];
  }
}

function convert(info: ConfigKeyInfo, text: string, variable: string): unknown {
  if (envForm(info) === "flow") return flowText(text, variable);
  switch (info.kind ?? "string") {
    case "list":
      return text.split(",").map((item) => item.trim()).filter((item) => item !== "");
    case "count":
      if (!/^\s*\d+\s*$/.test(text)) throw new ConfigError(variable, `expected a whole number of 0 or more, got ${JSON.stringify(text)}`);
      return Number(text);
    case "boolean": {
      const word = text.trim().toLowerCase();
      if (word === "true" || word === "1") return true;
      if (word === "false" || word === "0") return false;
      throw new ConfigError(variable, `expected true or false, got ${JSON.stringify(text)}`);
    }
    case "channel":
      // A URL never starts with "{", so the mapping form needs no variable of its own.
      return text.trim().startsWith("{") ? flowText(text, variable) : text;
    default:
      return text;
  }
}

/** YAML flow text (JSON is YAML): `[{name: db, run: "pg_dump app", path: db.dump}]`. */
function flowText(text: string, variable: string): unknown {
  // Not quoted in errors: a command line or URL in it may hold a password.
  const doc = parseDocument(text, { prettyErrors: false });
  if (doc.errors.length > 0) throw new ConfigError(variable, `not valid YAML/JSON flow text (${doc.errors[0]!.code})`);
  return doc.toJS();
}

/** Derived variables, every `env` fallback, and the CLI's own: the names that are not typos. */
function knownVariables(): Set<string> {
  const known = new Set(OTHER_VARIABLES);
  for (const k of CONFIG_KEYS) {
    known.add(envVariable(k.key));
    if (k.env) known.add(k.env).add(`${k.env}_FILE`);
  }
  return known;
}

/**
 * A VAULTIK_ variable close to a key's (VAULTIK_RETENTION_KEEP_DAYLY) or inside a section's
 * name (VAULTIK_S3_BUKKIT) is a typo to report, as an unknown key in the file is; others
 * (VAULTIK_ variables of other tools) are left alone.
 */
function checkVariableNames(env: NodeJS.ProcessEnv): void {
  const known = knownVariables();
  const derived = CONFIG_KEYS.filter((k) => envForm(k) === "value" || envForm(k) === "flow").map((k) => envVariable(k.key));
  const sections = CONFIG_KEYS.filter((k) => envForm(k) === "section").map((k) => envVariable(k.key));
  for (const name of Object.keys(env)) {
    if (!name.startsWith(PREFIX) || name.startsWith(OTHER_PREFIX) || known.has(name)) continue;
    const guess = closest(name.toLowerCase(), derived.map((d) => d.toLowerCase()))?.toUpperCase();
    if (guess !== undefined) throw new ConfigError(name, `unknown variable (did you mean ${guess}?)`);
    const section = sections.find((s) => name === s || name.startsWith(`${s}_`));
    if (section !== undefined) {
      throw new ConfigError(name, `unknown variable: ${section}_ variables are ${derived.filter((d) => d.startsWith(`${section}_`)).join(", ")}`);
    }
  }
}

/** `err` relabelled with the variable its key came from, so the user knows what to fix. */
export function blameVariable(err: unknown, origins: ReadonlyMap<string, string>): unknown {
  if (!(err instanceof ConfigError)) return err;
  let best: string | undefined;
  for (const key of origins.keys()) {
    const covers = err.key === key || err.key.startsWith(`${key}.`) || err.key.startsWith(`${key}[`);
    if (covers && (best === undefined || key.length > best.length)) best = key;
  }
  if (best === undefined) return err;
  const variable = origins.get(best)!;
  return new ConfigError(variable, err.key === best ? err.detail : `${err.key}: ${err.detail}`, { cause: err });
}

/** Without a file, a missing key is a missing variable: say which (`store: required …; set VAULTIK_STORE`). */
export function nameMissingVariable(err: unknown): unknown {
  if (!(err instanceof ConfigError) || !err.detail.startsWith("required")) return err;
  const key = err.key.replace(/\[\d+\]/g, "[]");
  if (!CONFIG_KEYS.some((k) => k.key === key)) return err;
  return new ConfigError(err.key, `${err.detail}; without a config file, set ${envVariable(key)}`, { cause: err });
}
