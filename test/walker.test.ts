import { mkdir, mkdtemp, rm, symlink, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { Catalog } from "../src/catalog/db.js";
import { makeExcluder } from "../src/backup/exclude.js";
import { walk, type WalkEvent } from "../src/backup/walker.js";

// Counts lstat calls, to show that an incremental walk leaves clean subtrees alone.
const counter = vi.hoisted(() => ({ lstat: 0 }));
vi.mock("node:fs", async (importOriginal) => {
  const real = await importOriginal<typeof import("node:fs")>();
  const lstatSync = ((...args: Parameters<typeof real.lstatSync>) => {
    counter.lstat++;
    return real.lstatSync(...args);
  }) as typeof real.lstatSync;
  return { ...real, default: { ...real, lstatSync }, lstatSync };
});

let dir: string;
let root: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-walk-"));
  root = join(dir, "src");
  for (const d of ["a", "a/deep", "b", "c", "node_modules/pkg"]) await mkdir(join(root, d), { recursive: true });
  for (let i = 0; i < 50; i++) await writeFile(join(root, "b", `f${i}.txt`), `b${i}`);
  await writeFile(join(root, "a", "x.txt"), "x");
  await writeFile(join(root, "a", "deep", "y.log"), "y");
  await writeFile(join(root, "a", "deep", "z.txt"), "z");
  await writeFile(join(root, "node_modules", "pkg", "index.js"), "js");
  await symlink("a/x.txt", join(root, "link"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function entries(events: AsyncIterable<WalkEvent>): Promise<string[]> {
  const out: string[] = [];
  for await (const ev of events) if (ev.kind === "entry") out.push(`${ev.entry.type} ${ev.entry.path} ${ev.entry.stamp.size}`);
  return out.sort();
}

describe("walker", () => {
  const exclude = () => makeExcluder(["*.log", "node_modules/"], [root]);

  it("without patterns, walks everything except the paths it must always skip (its own index)", async () => {
    const own = join(root, "b", "f7.txt");
    const paths: string[] = [];
    for await (const ev of walk([root], makeExcluder([], [root], [own]))) if (ev.kind === "entry") paths.push(ev.entry.abs);
    expect(paths).not.toContain(own);
    expect(paths).toContain(join(root, "b", "f8.txt"));
    expect(paths.some((p) => p.endsWith(".log"))).toBe(true);
    expect(paths.some((p) => p.includes("node_modules"))).toBe(true);
  });

  it("walks in name order, directories before contents, applying gitignore-style excludes", async () => {
    const paths: string[] = [];
    for await (const ev of walk([root], exclude())) if (ev.kind === "entry") paths.push(ev.entry.abs);
    // The directories above the source dir come first (a restore recreates them), then the tree.
    const rel = paths.filter((p) => p.startsWith(root)).map((p) => p.slice(root.length));
    expect(rel.slice(0, 6)).toEqual(["", "/a", "/b", "/c", "/link", "/a/deep"]);
    expect(paths.some((p) => p.endsWith(".log"))).toBe(false);
    expect(paths.some((p) => p.includes("node_modules"))).toBe(false);
    expect(paths.filter((p) => p.includes("/b/f"))).toHaveLength(50);
  });

  it("an incremental walk sees the same tree as a full one, stat'ing only the changed paths", async () => {
    const catalog = new Catalog(join(dir, "catalog.sqlite"));
    try {
      const full: WalkEvent[] = [];
      for await (const ev of walk([root], exclude())) full.push(ev);
      catalog.recordEntries(
        full.flatMap((ev) =>
          ev.kind === "entry" ? [{ path: ev.entry.abs, type: ev.entry.type, mode: ev.entry.mode, uid: ev.entry.uid, gid: ev.entry.gid, stamp: ev.entry.stamp, linkTarget: ev.entry.linkTarget }] : [],
        ),
      );
      // What a watcher would report: one file changed, one added, one removed.
      await writeFile(join(root, "a", "x.txt"), "x changed");
      await writeFile(join(root, "c", "new.txt"), "new");
      await unlink(join(root, "a", "deep", "z.txt"));
      const dirty = { paths: new Set([join(root, "a", "x.txt"), join(root, "c", "new.txt"), join(root, "a", "deep", "z.txt")]) };

      counter.lstat = 0;
      const incremental = await entries(walk([root], exclude(), { dirty, catalog }));
      const incrementalStats = counter.lstat;
      counter.lstat = 0;
      const fresh = await entries(walk([root], exclude()));
      const fullStats = counter.lstat;

      expect(incremental).toEqual(fresh);
      expect(incremental).toContain(`file ${root.slice(1)}/a/x.txt 9`);
      expect(incremental).toContain(`file ${root.slice(1)}/c/new.txt 3`);
      expect(incremental.some((e) => e.includes("z.txt"))).toBe(false);
      // The 50 files of b/ and the untouched entries are not stat'ed again.
      expect(fullStats).toBeGreaterThan(55);
      expect(incrementalStats).toBeLessThan(15);

      // What the archiver does with that walk: record what it saw, forget what is gone. A later
      // incremental walk in which a/deep is clean must not bring the deleted z.txt back.
      for await (const ev of walk([root], exclude(), { dirty, catalog })) {
        if (ev.kind === "gone") catalog.dropSubtree(ev.abs);
        if (ev.kind === "entry") {
          const e = ev.entry;
          catalog.recordEntries([{ path: e.abs, type: e.type, mode: e.mode, uid: e.uid, gid: e.gid, stamp: e.stamp, linkTarget: e.linkTarget }]);
        }
      }
      await writeFile(join(root, "c", "later.txt"), "later");
      const later = await entries(walk([root], exclude(), { dirty: { paths: new Set([join(root, "c", "later.txt")]) }, catalog }));
      expect(later).toEqual(await entries(walk([root], exclude())));
      expect(later.some((e) => e.includes("z.txt"))).toBe(false);
    } finally {
      catalog.close();
    }
  });
});
