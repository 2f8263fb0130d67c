import { ConfigError } from "../errors.js";
import { parseDuration, parseRate, parseSize } from "./units.js";
import { describe, keyOf, type Section, valueOf, wrongType } from "./yaml.js";

// Typed readers of one value in a section: each names the dotted key in its error.

export function optString(s: Section, key: string): string | undefined {
  const v = valueOf(s, key);
  if (v === undefined) return undefined;
  return nonEmptyString(v, keyOf(s, key));
}

export function reqString(s: Section, key: string): string {
  const v = optString(s, key);
  if (v === undefined) throw new ConfigError(keyOf(s, key), "required");
  return v;
}

export function nonEmptyString(v: unknown, key: string): string {
  if (typeof v !== "string") throw wrongType(key, "a string", v);
  if (v.trim() === "") throw new ConfigError(key, "must not be empty");
  return v.trim();
}

export function optBool(s: Section, key: string): boolean | undefined {
  const v = valueOf(s, key);
  if (v !== undefined && typeof v !== "boolean") throw wrongType(keyOf(s, key), "true or false", v);
  return v;
}

export function optList(s: Section, key: string): unknown[] | undefined {
  const v = valueOf(s, key);
  if (v !== undefined && !Array.isArray(v)) throw wrongType(keyOf(s, key), "a list", v);
  return v;
}

export function stringItems(list: readonly unknown[], key: string): string[] {
  return list.map((item, i) => nonEmptyString(item, `${key}[${i}]`));
}

/** A non-negative whole number. */
export function optCount(s: Section, key: string): number | undefined {
  const v = valueOf(s, key);
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new ConfigError(keyOf(s, key), `expected a whole number of 0 or more, got ${describe(v)}`);
  }
  return v;
}

export function optDuration(s: Section, key: string): number | undefined {
  return optMeasure(s, key, "a duration such as 15m", parseDuration);
}

/** The duration at `key`, else `fallback`; at least `min` ms. */
export function durationOr(s: Section, key: string, fallback: string, min: number): number {
  const ms = optDuration(s, key) ?? parseDuration(fallback, keyOf(s, key));
  if (ms < min) throw new ConfigError(keyOf(s, key), `must be longer than 0, got ${describe(valueOf(s, key))}`);
  return ms;
}

export function optSize(s: Section, key: string): number | undefined {
  return optMeasure(s, key, "a size such as 64MiB", parseSize);
}

export function optRate(s: Section, key: string): number | undefined {
  return optMeasure(s, key, "a rate such as 10MiB/s", parseRate);
}

/** A string or number at `key` read by `parse`; `example` shows the form in a type error. */
function optMeasure(s: Section, key: string, example: string, parse: (v: string | number, key: string) => number): number | undefined {
  const v = valueOf(s, key);
  if (v === undefined) return undefined;
  if (typeof v !== "string" && typeof v !== "number") throw wrongType(keyOf(s, key), example, v);
  return parse(v, keyOf(s, key));
}

/** An http(s) URL. Only `endpoint` is quoted in errors: webhook and ntfy URLs often embed tokens. */
export function optUrl(s: Section, key: string, quote: boolean): string | undefined {
  const text = optString(s, key);
  if (text === undefined) return undefined;
  const expected = "expected an http:// or https:// URL";
  const shown = quote ? `, got ${JSON.stringify(text)}` : "";
  // "minio:9000" parses as a URL with the scheme "minio:", so look for "://" first.
  if (!text.includes("://")) throw new ConfigError(keyOf(s, key), `${expected}${shown} (missing http:// or https://?)`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(keyOf(s, key), `${expected}${shown || ", got something else"}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(keyOf(s, key), `${expected}, got a ${url.protocol} URL${quote ? ` (${JSON.stringify(text)})` : ""}`);
  }
  return text;
}

export function eitherNotBoth(key: string, other: string): ConfigError {
  return new ConfigError(key, `give either ${key.split(".").pop()} or ${other}, not both`);
}
