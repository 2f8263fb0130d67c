// Sizes and durations for output. Binary units, as `du -h` and `ls -lh` print them, so our
// numbers line up with the tools users check them against (config/units.ts parses them).

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** `0 B`, `512 B`, `1.5 KiB`, `64 MiB`: binary units, at most one decimal. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (n < 0) return `-${formatBytes(-n)}`;
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let value = n;
  let unit = 0;
  // Compare the rounded value so 1023.97 KiB prints as 1 MiB rather than 1024 KiB.
  while (unit < units.length - 1 && roundTenth(value) >= 1024) {
    value /= 1024;
    unit += 1;
  }
  return `${unit === 0 ? Math.round(value) : roundTenth(value)} ${units[unit]}`;
}

/** `450ms`, `3.2s`, `2m 5s`, `1h 2m`, `3d 4h`: from a minute up, the two largest units. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  if (ms < 0) return `-${formatDuration(-ms)}`;
  if (Math.round(ms) < SECOND) return `${Math.round(ms)}ms`;
  const tenths = Math.round(ms / 100);
  if (tenths < 600) return `${tenths / 10}s`;
  const seconds = Math.round(ms / SECOND);
  const units: readonly [string, number][] = [
    ["d", DAY / SECOND],
    ["h", HOUR / SECOND],
    ["m", MINUTE / SECOND],
    ["s", 1],
  ];
  const i = units.findIndex(([, size]) => seconds >= size);
  const [bigName, bigSize] = units[i] ?? ["s", 1];
  const [smallName, smallSize] = units[i + 1] ?? ["s", 1];
  const big = `${Math.floor(seconds / bigSize)}${bigName}`;
  // Truncated, not rounded: "1h 59m" must never print as "1h 60m".
  const small = Math.floor((seconds % bigSize) / smallSize);
  return small > 0 ? `${big} ${small}${smallName}` : big;
}

function roundTenth(n: number): number {
  return Math.round(n * 10) / 10;
}
