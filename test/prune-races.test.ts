import { spawnSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, rm, unlink, writeFile } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { runBackup, type RunHooks } from "../src/backup/run.js";
import { parseConfig, type Config } from "../src/config/index.js";
import { generateIdentity, parseIdentity, type X25519Identity } from "../src/crypto/keys.js";
import { IntegrityError, LockedError, StoreError } from "../src/errors.js";
import { prune, type PruneOptions, type PruneReport } from "../src/prune/prune.js";
import { Repository } from "../src/repo/repository.js";
import { Restorer } from "../src/restore/restorer.js";
import { referencedBlobs } from "../src/snapshot/blobs.js";
import { withSnapshot } from "../src/snapshot/open.js";
import { openMemoryStore, type MemoryStore } from "../src/store/memory.js";
import type { Store } from "../src/store/store.js";
import { pseudoRandom } from "./helpers/tree.js";

// Every interleaving of a backup and a prune that docs/PRUNE.md argues about, forced in-process
// instead of hoped for: the clock is frozen (vi fakes Date only, so the memory store's mtimes,
// heartbeats, notices and snapshot ids all read it) and moves only when a test says so, and a
// prune runs exactly at a named point of the backup (runBackup's hooks) or of the prune (a store
// wrapper that pauses after one listing). Each case asserts the one outcome the design promises.

const MiB = 1024 * 1024;
const MINUTE = 60_000;
const T0 = Date.UTC(2026, 10, 27, 12, 0, 0);

interface World {
  dir: string;
  source: string;
  store: MemoryStore;
  config: Config;
  identity: X25519Identity;
  /** The source as it is now: relative path → bytes. */
  files: Map<string, Buffer>;
}

let dirs: string[] = [];
let recipientKey: string;
let identity: X25519Identity;

beforeEach(async () => {
  if (!recipientKey) {
    const keys = await generateIdentity();
    recipientKey = keys.recipient;
    identity = parseIdentity(keys.identity);
  }
  vi.useFakeTimers({ toFake: ["Date"], now: T0 });
});
afterEach(async () => {
  vi.useRealTimers();
  for (const d of dirs) await rm(d, { recursive: true, force: true });
  dirs = [];
});

function advance(ms: number): void {
  vi.setSystemTime(Date.now() + ms);
}

async function world(): Promise<World> {
  const dir = await mkdtemp(join(tmpdir(), "vaultik-races-"));
  dirs.push(dir);
  const source = join(dir, "source");
  await mkdir(source);
  const path = join(dir, "vaultik.yml");
  const text =
    `age_recipient: ${recipientKey}\nsource_dirs: [${source}]\nstore: ${join(dir, "unused")}\n` +
    `index_path: ${join(dir, "state", "index.sqlite")}\nchunk_size: 64KiB\nblob_size_limit: 1MiB\n`;
  return { dir, source, store: openMemoryStore(), config: parseConfig(text, { path, env: {} }), identity, files: new Map() };
}

async function put(w: World, name: string, size: number, seed: number): Promise<void> {
  const data = pseudoRandom(size, seed);
  await writeFile(join(w.source, name), data);
  w.files.set(name, data);
}

async function drop(w: World, name: string): Promise<void> {
  await unlink(join(w.source, name));
  w.files.delete(name);
}

/** A backup of the source; returns its id and the files it should restore to. */
async function backup(w: World, hooks?: RunHooks, store: Store = w.store): Promise<{ id: string; files: Map<string, Buffer> }> {
  const files = new Map(w.files);
  const summary = await runBackup(w.config, { store, hooks });
  return { id: summary.snapshotId, files };
}

function pruneOptions(w: World, store: Store = w.store): PruneOptions {
  return { repo: new Repository(store), identities: [w.identity], policy: {}, graceMs: 0, windowMs: 0, force: true, now: () => Date.now() };
}

function runPrune(w: World, store: Store = w.store, extra: Partial<PruneOptions> = {}): Promise<PruneReport> {
  return prune({ ...pruneOptions(w, store), ...extra });
}

async function blobsOf(w: World, id: string): Promise<string[]> {
  const repo = new Repository(w.store);
  return (await referencedBlobs(repo, await repo.findSnapshot(id), [w.identity])).sort();
}

/** Blob names in the store: read from the store this test created, not through the repository. */
function storedBlobs(w: World, store: MemoryStore = w.store): string[] {
  return [...store.objects.keys()].filter((k) => k.startsWith("blobs/")).map((k) => k.slice(k.lastIndexOf("/") + 1)).sort();
}

/** Backups with a heartbeat and no end marker in the store: inside a hook, the one running. */
function runIds(w: World): string[] {
  const keys = [...w.store.objects.keys()].filter((k) => k.startsWith("runs/"));
  const ended = new Set(keys.filter((k) => k.endsWith("/done.json")).map((k) => k.split("/")[1]!));
  return [...new Set(keys.map((k) => k.split("/")[1]!))].filter((id) => !ended.has(id));
}

async function snapshotIds(w: World, store: Store = w.store): Promise<string[]> {
  return (await new Repository(store).listSnapshots()).map((s) => s.id).sort();
}

async function forgetAll(w: World): Promise<void> {
  const repo = new Repository(w.store);
  for (const s of await repo.listSnapshots()) await repo.deleteSnapshot(s);
}

/** Restores `id` through the entry point `vaultik restore` uses and compares every byte. */
async function expectRestores(w: World, id: string, files: Map<string, Buffer>, store: Store = w.store): Promise<void> {
  const repo = new Repository(store);
  const target = await mkdtemp(join(w.dir, "restore-"));
  try {
    const summary = await withSnapshot(repo, await repo.findSnapshot(id), [w.identity], (reader) =>
      new Restorer({ repo, identities: [w.identity], snapshot: reader, target }).run(),
    );
    expect(summary.errors, `snapshot ${id}`).toEqual([]);
    expect(summary.files, `snapshot ${id}`).toBe(files.size);
    for (const [name, data] of files) {
      const got = await readFile(join(target, w.source.slice(1), name));
      expect(got.equals(data), `${name} of snapshot ${id} restores bit-exact`).toBe(true);
    }
  } finally {
    await rm(target, { recursive: true, force: true });
  }
}

/** The store with its list() pausing once, after listing `prefix` in full, until `resume` settles. */
function pauseAfterList(store: Store, prefix: string, onPause: () => Promise<void>): Store {
  let paused = false;
  return {
    location: store.location,
    put: (k, b, o) => store.put(k, b, o),
    get: (k, o) => store.get(k, o),
    stat: (k, o) => store.stat(k, o),
    delete: (k, o) => store.delete(k, o),
    async *list(p, o) {
      yield* store.list(p, o);
      if (p === prefix && !paused) {
        paused = true;
        await onPause();
      }
    },
  };
}

/** One promise settled from outside: the handshake between a paused prune and a backup. */
function gate(): { wait: Promise<void>; open: () => void } {
  let open!: () => void;
  const wait = new Promise<void>((res) => (open = res));
  return { wait, open };
}

/**
 * The common start: snapshot S1 of a.bin, then S1 forgotten and b.bin added, so the next backup
 * deduplicates a.bin against blobs that only a forgotten snapshot references: exactly the
 * blobs a prune announces and deletes.
 */
async function forgottenBase(w: World): Promise<string[]> {
  await put(w, "a.bin", 3 * MiB, 1);
  const s1 = await backup(w);
  const s1Blobs = await blobsOf(w, s1.id);
  expect(s1Blobs.length).toBeGreaterThanOrEqual(3);
  await forgetAll(w);
  await put(w, "b.bin", 2 * MiB, 2);
  advance(5 * MINUTE);
  return s1Blobs;
}

interface During {
  report: PruneReport;
  /** The backups running when the prune started (the one under test). */
  running: string[];
  /** Blobs stored when the prune started. */
  stored: string[];
}

/**
 * A backup with a prune run at one of its hook points, after `first` (which may move the
 * clock). Returns what the prune saw and did, and the backup's result or error.
 */
async function pruneDuring(w: World, point: keyof RunHooks, first: () => void = () => {}): Promise<{ during: During; outcome: Awaited<ReturnType<typeof backup>> | unknown }> {
  let during: During | undefined;
  const hook = async (): Promise<void> => {
    first();
    const running = runIds(w);
    const stored = storedBlobs(w);
    during = { report: await runPrune(w), running, stored };
  };
  const outcome = await backup(w, { [point]: hook }).catch((err: unknown) => err);
  expect(during, `the backup reached ${point}`).toBeDefined();
  return { during: during!, outcome };
}

describe("a prune at each point of a running backup (docs/PRUNE.md, Deleting blobs safely)", () => {
  it("published between the backup's heartbeat and its notice read: the prune defers naming the backup, which re-uploads and restores", async () => {
    const w = await world();
    const s1Blobs = await forgottenBase(w);
    const { during, outcome } = await pruneDuring(w, "afterHeartbeat");
    const b = outcome as Awaited<ReturnType<typeof backup>>;
    expect(during.running).toEqual([b.id]);
    expect(during.report).toMatchObject({ blobsAnnounced: s1Blobs.length, blobsDeleted: 0 });
    expect(during.report.deferred).toEqual([expect.objectContaining({ waitingFor: [b.id], blobs: s1Blobs.length })]);
    // The backup read the notice and packed a.bin again instead of referencing announced blobs.
    const bBlobs = await blobsOf(w, b.id);
    expect(bBlobs.filter((x) => s1Blobs.includes(x))).toEqual([]);
    await expectRestores(w, b.id, b.files);

    advance(5 * MINUTE);
    const after = await runPrune(w);
    expect(after).toMatchObject({ blobsDeleted: s1Blobs.length, deferred: [] });
    expect(storedBlobs(w)).toEqual(bBlobs);
    await expectRestores(w, b.id, b.files);
  });

  it("inside beforeCommit (after the notice read): the prune defers naming the backup and spares its new blobs; the backup refuses to commit", async () => {
    const w = await world();
    const s1Blobs = await forgottenBase(w);
    const { during, outcome: failure } = await pruneDuring(w, "beforeCommit");
    const newBlobs = during.stored.filter((x) => !s1Blobs.includes(x));
    expect(newBlobs.length).toBeGreaterThan(0);
    expect(during.running).toHaveLength(1);
    expect(during.report).toMatchObject({ blobsAnnounced: s1Blobs.length, blobsDeleted: 0, blobsYoung: newBlobs.length, youngHeldBy: during.running });
    expect(during.report.deferred).toEqual([expect.objectContaining({ waitingFor: during.running, blobs: s1Blobs.length })]);
    expect(failure).toBeInstanceOf(IntegrityError);
    expect(String(failure)).toContain(`a prune announced deletion of ${s1Blobs.length} blob(s) this snapshot needs`);
    expect(await snapshotIds(w)).toEqual([]);
    expect(storedBlobs(w)).toEqual([...s1Blobs, ...newBlobs].sort());

    // The catalog forgot the announced blobs: the next backup stands alone and restores, and
    // once it has ended a prune deletes the announced blobs and the refused run's leftovers.
    advance(5 * MINUTE);
    const c = await backup(w);
    const cBlobs = await blobsOf(w, c.id);
    expect(cBlobs.filter((x) => s1Blobs.includes(x))).toEqual([]);
    advance(5 * MINUTE);
    const after = await runPrune(w);
    expect(after.deferred).toEqual([]);
    expect(storedBlobs(w)).toEqual(cBlobs);
    await expectRestores(w, c.id, c.files);
  });

  it("a backup that ends between the prune's run listing and its snapshot listing: its snapshot counts as live and restores", async () => {
    const w = await world();
    await forgottenBase(w);
    const runsListed = gate();
    const backupEnded = gate();
    // The prune lists runs/ (the backup is running), then waits until the backup has committed.
    const store = pauseAfterList(w.store, "runs/", async () => {
      runsListed.open();
      await backupEnded.wait;
    });
    let pruning: Promise<PruneReport> | undefined;
    const b = await backup(w, {
      beforeCommit: async () => {
        pruning = runPrune(w, store);
        await runsListed.wait;
      },
    });
    backupEnded.open();
    const report = await pruning!;
    // a.bin's old blobs are referenced by the new snapshot, which the prune read: nothing goes.
    expect(report).toMatchObject({ blobsAnnounced: 0, blobsDeleted: 0, blobsYoung: 0, deferred: [] });
    expect(storedBlobs(w)).toEqual(await blobsOf(w, b.id));
    await expectRestores(w, b.id, b.files);
  });

  it("a backup stalled past 30 minutes without a heartbeat refuses to commit, even with no prune around", async () => {
    const w = await world();
    await forgottenBase(w);
    const failure = await backup(w, { beforeCommit: async () => advance(31 * MINUTE) }).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(IntegrityError);
    expect(String(failure)).toContain("no heartbeat reached the store for 31 minutes");
    expect(await snapshotIds(w)).toEqual([]);
  });

  it("a backup stalled an hour is taken for dead: the prune deletes at once, the backup refuses, the next one restores", async () => {
    const w = await world();
    const s1Blobs = await forgottenBase(w);
    const { during, outcome: failure } = await pruneDuring(w, "beforeCommit", () => advance(61 * MINUTE));
    // Its own uploads are unreferenced and it no longer counts as running: they go too.
    expect(during.stored.length).toBeGreaterThan(s1Blobs.length);
    expect(during.report).toMatchObject({ blobsDeleted: during.stored.length, deferred: [], youngHeldBy: [] });
    expect(storedBlobs(w)).toEqual([]);
    expect(failure).toBeInstanceOf(IntegrityError);
    expect(String(failure)).toContain("no heartbeat reached the store for 61 minutes");
    expect(await snapshotIds(w)).toEqual([]);

    advance(5 * MINUTE);
    const c = await backup(w);
    await expectRestores(w, c.id, c.files);
  });

  it("every backup forgets blobs the store no longer lists: an index from before a deleting prune re-uploads", async () => {
    const w = await world();
    const s1Blobs = await forgottenBase(w);
    const report = await runPrune(w);
    expect(report.blobsDeleted).toBe(s1Blobs.length);
    advance(5 * MINUTE);
    const b = await backup(w);
    expect((await blobsOf(w, b.id)).filter((x) => s1Blobs.includes(x))).toEqual([]);
    await expectRestores(w, b.id, b.files);
  });

  it("a notice the backup cannot read fails the backup; a notice that is junk is skipped", async () => {
    const w = await world();
    const s1Blobs = await forgottenBase(w);
    const announced = await runPrune(w, w.store, { windowMs: 3600_000 });
    expect(announced).toMatchObject({ blobsAnnounced: s1Blobs.length, blobsDeleted: 0 });
    const broken: Store = {
      ...w.store,
      get: async (k, o) => {
        if (k.startsWith("prune/pending/")) throw new StoreError(w.store.location, k, "connection reset");
        return w.store.get(k, o);
      },
    };
    const failure = await backup(w, undefined, broken).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(StoreError);
    expect(String(failure)).toContain("connection reset");
    expect(await snapshotIds(w)).toEqual([]);

    await w.store.put("prune/pending/1-00aa.json", Buffer.from("not json"));
    advance(5 * MINUTE);
    const b = await backup(w);
    expect((await blobsOf(w, b.id)).filter((x) => s1Blobs.includes(x))).toEqual([]);
    await expectRestores(w, b.id, b.files);
  });
});

describe("interrupted and concurrent prunes (docs/PRUNE.md, Interrupted and concurrent prunes)", () => {
  /** S1 (x), S2 (x, y), S3 (y, z); S1 and S2 forgotten: x's blobs go, y's stay for S3. */
  async function threeSnapshots(w: World): Promise<{ kept: { id: string; files: Map<string, Buffer> }; dead: string[] }> {
    await put(w, "x.bin", 2 * MiB, 10);
    const s1 = await backup(w);
    advance(MINUTE);
    await put(w, "y.bin", 2 * MiB, 11);
    const s2 = await backup(w);
    advance(MINUTE);
    await drop(w, "x.bin");
    await put(w, "z.bin", 2 * MiB, 12);
    const s3 = await backup(w);
    const live = await blobsOf(w, s3.id);
    const dead = [...new Set([...(await blobsOf(w, s1.id)), ...(await blobsOf(w, s2.id))])].filter((x) => !live.includes(x));
    expect(dead.length).toBeGreaterThan(0);
    const repo = new Repository(w.store);
    for (const id of [s1.id, s2.id]) await repo.deleteSnapshot(await repo.findSnapshot(id));
    advance(5 * MINUTE);
    return { kept: s3, dead };
  }

  function copyOf(store: MemoryStore): MemoryStore {
    const copy = openMemoryStore();
    for (const [k, v] of store.objects) copy.objects.set(k, { bytes: Buffer.from(v.bytes), mtime: v.mtime });
    return copy;
  }

  class Killed extends Error {}

  /** The store with the prune "killed" just before its n-th write or delete (the lock aside). */
  function dyingAt(store: Store, n: number): { store: Store; died: () => boolean } {
    let writes = 0;
    const hit = (key: string): void => {
      if (key.startsWith("locks/")) return;
      if (++writes === n) throw new Killed(`killed before write ${n} (${key})`);
    };
    return {
      died: () => writes >= n,
      store: {
        ...store,
        put: async (k, b, o) => (hit(k), store.put(k, b, o)),
        delete: async (k, o) => (hit(k), store.delete(k, o)),
      },
    };
  }

  it("a prune killed before any one of its writes leaves every kept snapshot restorable, and the next prune finishes the job", async () => {
    const w = await world();
    const { kept, dead } = await threeSnapshots(w);
    const base = copyOf(w.store);
    let points = 0;
    for (let n = 1; ; n++) {
      const store = copyOf(base);
      const dying = dyingAt(store, n);
      const outcome = await runPrune(w, dying.store).catch((err: unknown) => err);
      if (!dying.died()) {
        // Past the last write: a prune that ran to the end, the reference outcome.
        expect(outcome).toMatchObject({ blobsDeleted: dead.length });
        break;
      }
      points++;
      expect(outcome, `write ${n}`).toBeInstanceOf(Killed);
      for (const x of await blobsOf(w, kept.id)) expect(storedBlobs(w, store), `write ${n}`).toContain(x);
      await expectRestores(w, kept.id, kept.files, store);
      const finish = await runPrune(w, store);
      expect(finish.deferred, `write ${n}`).toEqual([]);
      expect(storedBlobs(w, store), `write ${n}`).toEqual(await blobsOf(w, kept.id));
      expect(await snapshotIds(w, store)).toEqual([kept.id]);
      await expectRestores(w, kept.id, kept.files, store);
    }
    // Snapshot deletes, the notice, every blob delete, its retirement, the run markers.
    expect(points).toBeGreaterThanOrEqual(2 + 1 + dead.length + 2);
  });

  it("a lock left by a dead prune of this host is taken over", async () => {
    const w = await world();
    const { kept, dead } = await threeSnapshots(w);
    const child = spawnSync(process.execPath, ["-e", ""]);
    const body = { host: hostname(), pid: child.pid, nonce: "dead", created: new Date().toISOString(), expires: Date.now() + 6 * 3600_000 };
    await w.store.put("locks/prune.json", Buffer.from(JSON.stringify(body)));
    const report = await runPrune(w);
    expect(report.blobsDeleted).toBe(dead.length);
    expect(w.store.objects.has("locks/prune.json")).toBe(false);
    await expectRestores(w, kept.id, kept.files);
  });

  it("a second prune while the first deletes: the second is refused with LockedError, the first finishes", async () => {
    const w = await world();
    const { kept, dead } = await threeSnapshots(w);
    let second: unknown;
    const first: Store = {
      ...w.store,
      delete: async (k, o) => {
        if (k.startsWith("blobs/") && second === undefined) second = await runPrune(w).catch((err: unknown) => err);
        return w.store.delete(k, o);
      },
    };
    const report = await runPrune(w, first);
    expect(second).toBeInstanceOf(LockedError);
    expect(String(second)).toMatch(/another prune is running \(host .*, pid \d+/);
    expect(report.blobsDeleted).toBe(dead.length);
    expect(storedBlobs(w)).toEqual(await blobsOf(w, kept.id));
    await expectRestores(w, kept.id, kept.files);
  });
});
