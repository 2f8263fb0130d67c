import { describe, expect, it } from "vitest";
import { planPrune, type PlanInput } from "../src/prune/plan.js";

const H = 3600_000;
const name = (c: string) => c.repeat(64);

function input(over: Partial<PlanInput>): PlanInput {
  return {
    now: 100 * H, graceMs: 24 * H, windowMs: H, skewMs: 60_000, staleRunMs: H,
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

  it("says when the last blob inside the grace period leaves it", () => {
    const p = planPrune(input({ blobs: [{ name: name("a"), size: 1, mtime: 90 * H }, { name: name("b"), size: 1, mtime: 95 * H }] }));
    expect([p.young, p.youngUntil, p.heldBy]).toEqual([2, 119 * H, []]);
  });

  it("the deleting prune's safety window counts, not the time written in the notice", () => {
    // Announced half an hour ago by a prune with a 100-hour window.
    const notice = { key: "prune/pending/1-aa.json", published: 99.5 * H, notBefore: 199.5 * H, blobs: [name("a")], host: "p" };
    expect(planPrune(input({ notices: [notice], windowMs: 0 })).notices[0]!.remove).toEqual([name("a")]);
    const waits = planPrune(input({ notices: [notice], windowMs: H })).notices[0]!;
    expect([waits.remove, waits.deletableAfter]).toEqual([[], 100.5 * H]);
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
    expect(held.notices[0]!.waitingFor).toEqual(["x"]);
    const done = planPrune(input({ notices: [notice], runs: [{ ...run, finished: true }] }));
    expect(done.notices[0]!.remove).toEqual([name("a")]);
  });
});
