import { ConfigError } from "../errors.js";

// Sizes, durations and rates as people write them in a config file or a command-line option.
// Parsers name the key and quote the value they refused, so a user can find the line. Sizes take
// both decimal (KB = 1000) and binary (KiB = 1024) units because S3 providers bill in one and
// operating systems report in the other (util/units.ts prints binary units, as `du -h` does).

const SIZE_UNITS: ReadonlyMap<string, number> = new Map([
  ["b", 1],
  ["k", 1e3],
  ["kb", 1e3],
  ["m", 1e6],
  ["mb", 1e6],
  ["g", 1e9],
  ["gb", 1e9],
  ["t", 1e12],
  ["tb", 1e12],
  ["kib", 2 ** 10],
  ["mib", 2 ** 20],
  ["gib", 2 ** 30],
  ["tib", 2 ** 40],
]);

const SIZE_HINT = "use B, KB/MB/GB/TB (x1000) or KiB/MiB/GiB/TiB (x1024), e.g. 64MiB";

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

// Lower case only: "M" would read as months to some people and minutes to others.
const DURATION_UNITS: ReadonlyMap<string, number> = new Map([
  ["ms", 1],
  ["s", SECOND],
  ["m", MINUTE],
  ["h", HOUR],
  ["d", DAY],
  ["w", 7 * DAY],
]);

const DURATION_HINT = "use ms, s, m, h, d, w, e.g. 15m or 1h30m";

/**
 * Bytes in a size such as `64MiB`, `1.5 GB`, `500kb` or a bare integer (bytes). Units are
 * case-insensitive; fractions are allowed with a unit and rounded down to whole bytes.
 */
export function parseSize(text: string | number, key: string): number {
  if (typeof text === "number") return sizeFromNumber(text, key);
  const bytes = sizeOrReason(text, JSON.stringify(text));
  if (typeof bytes === "string") throw new ConfigError(key, bytes);
  return bytes;
}

/** Milliseconds in a duration such as `15m`, `1h30m`, `1.5h` or `500ms`. A unit is required. */
export function parseDuration(text: string | number, key: string): number {
  const s = String(text).trim();
  if (typeof text === "number" || /^\d+(\.\d+)?$/.test(s)) {
    throw new ConfigError(key, `needs a unit, e.g. 15m, got ${JSON.stringify(text)} (${DURATION_HINT})`);
  }
  const ms = durationOrUndefined(s);
  if (ms === undefined) throw new ConfigError(key, `expected a duration (${DURATION_HINT}), got ${JSON.stringify(text)}`);
  return ms;
}

/** Bytes per second in a rate such as `10MiB/s` or `500KB/s`. Must be more than zero. */
export function parseRate(text: string | number, key: string): number {
  const s = String(text).trim();
  const slash = s.lastIndexOf("/");
  if (typeof text === "number" || slash < 0 || s.slice(slash + 1).trim() !== "s") {
    throw new ConfigError(key, `expected a rate such as 10MiB/s or 500KB/s, got ${JSON.stringify(text)}`);
  }
  const bytes = sizeOrReason(s.slice(0, slash), JSON.stringify(text));
  if (typeof bytes === "string") throw new ConfigError(key, bytes);
  if (bytes === 0) throw new ConfigError(key, `must be more than 0 bytes per second, got ${JSON.stringify(text)}`);
  return bytes;
}

/** Sum of `<number><unit>` parts covering all of `s`, or undefined if anything else is there. */
function durationOrUndefined(s: string): number | undefined {
  const part = /(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)\s*/y;
  let total = 0;
  let end = 0;
  for (let m = part.exec(s); m !== null; m = part.exec(s)) {
    total += Number(m[1]) * (DURATION_UNITS.get(m[2] ?? "") ?? Number.NaN);
    end = part.lastIndex;
  }
  const ms = Math.floor(total);
  return s !== "" && end === s.length && Number.isSafeInteger(ms) ? ms : undefined;
}

function sizeFromNumber(n: number, key: string): number {
  if (!Number.isSafeInteger(n) || n < 0) {
    throw new ConfigError(key, `a size without a unit is a whole number of bytes (${SIZE_HINT}), got ${n}`);
  }
  return n;
}

/** The size in bytes, or a message saying why `text` (shown to the user as `shown`) is not one. */
function sizeOrReason(text: string, shown: string): number | string {
  const m = /^(\d+(?:\.\d+)?|\.\d+)\s*([a-z]*)$/i.exec(text.trim());
  if (!m) return `expected a size (${SIZE_HINT}), got ${shown}`;
  const [, digits = "", unitText = ""] = m;
  if (unitText === "" && !/^\d+$/.test(digits)) {
    return `a size without a unit is a whole number of bytes (${SIZE_HINT}), got ${shown}`;
  }
  const unit = unitText === "" ? 1 : SIZE_UNITS.get(unitText.toLowerCase());
  if (unit === undefined) return `unknown unit ${JSON.stringify(unitText)} in ${shown} (${SIZE_HINT})`;
  const bytes = Math.floor(Number(digits) * unit);
  return Number.isSafeInteger(bytes) ? bytes : `${shown} is too large`;
}
