import { setImmediate as nextTurn } from "node:timers/promises";
import { testPoint, type TestPoint } from "./test-points.js";

// SQLite iterators are synchronous: a loop over millions of rows never gives the event loop a
// turn, so the SIGINT/SIGTERM handler (which aborts the command's signal) never runs. A file of
// 3,000,000 chunk references ran 9 minutes through SIGTERM that way. Long loops tick a Pace per
// item; every `every` items it lets one turn of the event loop pass and throws if aborted.

/** Items between turns: a turn costs a few µs, an item about 10 µs, so this is < 0.1 % and < 20 ms. */
const EVERY = 1024;

export class Pace {
  #n = 0;

  constructor(
    private readonly signal: AbortSignal | undefined,
    /** Named for tests that interrupt the loop (see test-points.ts). */
    private readonly point?: TestPoint,
    private readonly every = EVERY,
  ) {}

  /** Call once per item and await the result (nothing to wait for, except every `every` items). */
  tick(): Promise<void> | undefined {
    if (this.point) testPoint(this.point);
    if (++this.#n % this.every !== 0) return undefined;
    return this.pause();
  }

  private async pause(): Promise<void> {
    // Two turns: a signal is read in the loop's poll phase, and the first immediate may run in
    // the check phase right after the callback that ticked, before any poll.
    await nextTurn();
    await nextTurn();
    this.signal?.throwIfAborted();
  }
}
