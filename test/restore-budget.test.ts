import { describe, expect, it } from "vitest";
import { DEFAULT_MEMORY_LIMIT, restoreBudget } from "../src/restore/budget.js";

// The restore's one memory budget (issue 17): a memory limit fixes the writer threads and the
// bytes in flight; more cores never buy more of either beyond what the limit allows.

const MiB = 1024 * 1024;

describe("restoreBudget", () => {
  it("the default 256 MiB gives two writer threads and 16 MiB in flight on 2 cores and on 16", () => {
    expect(DEFAULT_MEMORY_LIMIT).toBe(256 * MiB);
    expect(restoreBudget(DEFAULT_MEMORY_LIMIT, 2)).toEqual({ writers: 2, bytesInFlight: 16 * MiB });
    expect(restoreBudget(DEFAULT_MEMORY_LIMIT, 16)).toEqual({ writers: 2, bytesInFlight: 16 * MiB });
  });

  it("a small limit still restores, with one thread and a floor of bytes in flight", () => {
    expect(restoreBudget(64 * MiB, 16)).toEqual({ writers: 1, bytesInFlight: 4 * MiB });
  });

  it("a larger limit buys threads up to the cores, and bytes in flight in proportion", () => {
    expect(restoreBudget(1024 * MiB, 4)).toEqual({ writers: 4, bytesInFlight: 64 * MiB });
    expect(restoreBudget(1024 * MiB, 64).writers).toBe(8);
  });
});
