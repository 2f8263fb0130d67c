import { expect, it } from "vitest";
import { TaskPool } from "../src/util/pool.js";

// settle() is what an interrupted restore waits on before it removes unfinished files: it must
// wait for every running task, failed or not, and must not throw.

it("settle waits for every running task after one failed, without throwing; drain rethrows", async () => {
  const pool = new TaskPool(3);
  const events: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  await pool.run(async () => {
    await gate;
    events.push("slow task finished");
  });
  await pool.run(async () => {
    throw new Error("first task failed");
  });
  await pool.whenFree().catch(() => {});
  await expect(pool.run(async () => {})).rejects.toThrow("first task failed");
  const settled = pool.settle().then(() => events.push("settled"));
  // The slow task is still running: settle has not resolved.
  await Promise.resolve();
  expect(events).toEqual([]);
  expect(pool.active).toBe(1);
  release();
  await settled;
  expect(events).toEqual(["slow task finished", "settled"]);
  await expect(pool.drain()).rejects.toThrow("first task failed");
});
