import { describe, expect, it } from "vitest";
import { planPrune, type PlanInput } from "../src/prune/plan.js";

const H = 3600_000;
const name = (c: string) => c.repeat(64);

function input(over: Partial<PlanInput>): PlanInput {
  return {
    now: 100 * H, graceMs: 24 * H, skewMs: 60_000, staleRunMs: H,
    blobs: [], live: new Set(), liveFrom: new Set(), existing: new Set(), notices: [], runs: [], ...over,
  };
}

describe("prune plan", () => {
  it("announces unreferenced blobs past the grace period, not young or live ones", () => {
    const p = planPrune(input({
      blobs: [{ name: name("a"), size: 10, mtime: 10 * H }, { name: name("b"), size: 20, mtime: 90 * H }, { name: name("c"), size: 30, mtime: 10 * H }],
      live: new Set([name("c")]),
    }));
    expect(p.announce).toEqual([name("a")]);
    expect([p.young, p.youngBytes]).toEqual([1, 20]);
  });

  it("spares blobs written since a still-running backup started, whatever their age", () => {
    // A 30-hour backup started at hour 60 uploaded blob b at hour 61; its snapshot is not there yet.
    const run = { snapshotId: "20260101T000000Z_h_00000000", started: 60 * H, lastBeat: 100 * H - 60_000, finished: false, keys: [] };
    const p = planPrune(input({
      blobs: [{ name: name("a"), size: 1, mtime: 10 * H }, { name: name("b"), size: 1, mtime: 61 * H }],
      runs: [run],
    }));
    expect(p.announce).toEqual([name("a")]);
  });

  it("holds a notice back while a backup that started before it is running", () => {
    const notice = { key: "prune/pending/1-aa.json", published: 50 * H, notBefore: 51 * H, blobs: [name("a")], host: "p" };
    const run = { snapshotId: "x", started: 49 * H, lastBeat: 100 * H - 1000, finished: false, keys: [] };
    const held = planPrune(input({ notices: [notice], runs: [run] }));
    expect(held.notices[0]!.remove).toEqual([]);
    expect(held.notices[0]!.deferred).toMatch(/started before the notice/);
    const done = planPrune(input({ notices: [notice], runs: [{ ...run, finished: true }] }));
    expect(done.notices[0]!.remove).toEqual([name("a")]);
  });
});
