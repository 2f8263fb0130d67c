import { split } from "../snapshot/entry-format.js";

// How the browsing commands (ls, find) show an entry: paths with a leading `/` and escaped as
// listings escape them (so they can be pasted into `fetch`), modes as `ls -l` prints them,
// times in UTC.

export { shownPath } from "../snapshot/typed-path.js";
export { isoNs, modeString } from "../snapshot/entry-format.js";

const NS_PER_MS = 1_000_000n;

/** `2026-11-27 10:15:00`, UTC. */
export function shortTime(ns: bigint): string {
  return new Date(Number(split(ns).seconds) * 1000).toISOString().slice(0, 19).replace("T", " ");
}

/** A Date's milliseconds as nanoseconds, to compare with recorded mtimes. */
export function nsOf(date: Date): bigint {
  return BigInt(date.getTime()) * NS_PER_MS;
}

/** `major, minor` of a Linux device number (glibc's encoding), as `ls -l` prints it for a device. */
export function deviceNumbers(rdev: number): string {
  const dev = BigInt(rdev);
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return `${major}, ${minor}`;
}

/**
 * Writes lines to stdout in batches: a write per line costs a system call each, which for a
 * listing of a million entries was most of its time.
 */
export class LineWriter {
  #lines: string[] = [];
  #size = 0;
  constructor(private readonly write: (text: string) => void) {}

  line(text: string): void {
    this.#lines.push(text);
    this.#size += text.length;
    if (this.#size >= 1 << 16) this.flush();
  }

  flush(): void {
    if (this.#lines.length === 0) return;
    this.write(this.#lines.join("\n"));
    this.#lines = [];
    this.#size = 0;
  }
}

/**
 * A JSON array written an element at a time, exactly as JSON.stringify(array, null, 2) would
 * print it, without holding the array.
 */
export class JsonArrayWriter {
  #count = 0;
  /** Held back one element: the last one takes no comma. */
  #pending = "";
  constructor(private readonly out: LineWriter) {}

  add(value: unknown): void {
    const text = JSON.stringify(value, null, 2).replace(/\n/g, "\n  ");
    if (this.#count > 0) this.out.line(`${this.#pending},`);
    else this.out.line("[");
    this.#pending = `  ${text}`;
    this.#count++;
  }

  end(): void {
    if (this.#count === 0) this.out.line("[]");
    else this.out.line(`${this.#pending}\n]`);
    this.out.flush();
  }
}

/**
 * Text columns aligned like table() (snapshots.ts), right-aligned where asked, printed in
 * batches so a listing of millions of rows is not held: widths grow with what has been seen,
 * so a later batch with a wider value is wider from there on.
 */
export class ColumnWriter {
  #rows: string[][] = [];
  #widths: number[] = [];
  constructor(
    private readonly out: LineWriter,
    private readonly right: ReadonlySet<number>,
    private readonly batch = 1000,
  ) {}

  row(cells: string[]): void {
    this.#rows.push(cells);
    if (this.#rows.length >= this.batch) this.flush();
  }

  flush(): void {
    for (const r of this.#rows) r.forEach((c, i) => (this.#widths[i] = Math.max(this.#widths[i] ?? 0, c.length)));
    for (const r of this.#rows) {
      const last = r.length - 1;
      this.out.line(r.map((c, i) => (i === last ? c : this.right.has(i) ? c.padStart(this.#widths[i]!) : c.padEnd(this.#widths[i]!))).join("  "));
    }
    this.#rows = [];
  }
}
