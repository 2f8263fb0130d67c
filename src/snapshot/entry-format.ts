import type { EntryType } from "./schema.js";

// How an entry's mode and times read for people and JSON, the same in `vaultik ls`/`find` and
// `vaultik serve`: modes as `ls -l` prints them, times in UTC with the recorded nanoseconds.

const TYPE_CHAR: Record<EntryType, string> = { file: "-", dir: "d", symlink: "l", fifo: "p", chardev: "c", blockdev: "b" };

/** `drwxr-xr-x`, `-rwsr-x---`, `drwxrwxrwt`: the type letter and permission bits as `ls -l` shows them. */
export function modeString(type: EntryType, mode: number): string {
  const bits = (shift: number, special: number, letter: string) => {
    const r = mode & (4 << shift) ? "r" : "-";
    const w = mode & (2 << shift) ? "w" : "-";
    const x = (mode & (1 << shift)) !== 0;
    const s = (mode & special) !== 0;
    return r + w + (s ? (x ? letter : letter.toUpperCase()) : x ? "x" : "-");
  };
  return TYPE_CHAR[type] + bits(6, 0o4000, "s") + bits(3, 0o2000, "s") + bits(0, 0o1000, "t");
}

/** Splits nanoseconds since the epoch into whole seconds and the nanoseconds after them (also before 1970). */
export function split(ns: bigint): { seconds: bigint; fraction: bigint } {
  const fraction = ((ns % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n;
  return { seconds: (ns - fraction) / 1_000_000_000n, fraction };
}

/** `2026-11-27T10:15:00.123456789Z`: ISO 8601 UTC with the nanoseconds the snapshot records. */
export function isoNs(ns: bigint): string {
  const { seconds, fraction } = split(ns);
  const whole = new Date(Number(seconds) * 1000).toISOString().slice(0, 19);
  return `${whole}.${fraction.toString().padStart(9, "0")}Z`;
}
