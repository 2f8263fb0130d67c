import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { IntegrityError, LockedError, isNotFound } from "../errors.js";
import { getBytes } from "../store/bytes.js";
import { holderAlive } from "../util/process.js";
import type { CallOptions, Store } from "../store/store.js";
import {
  heartbeatKey, isNoticeKey, noticeKey, noticeName, noticePrefix, parseRunKey, PRUNE_LOCK, runEndKey, runPrefix, RUNS_PREFIX,
  type NoticeKind,
} from "./layout.js";

// The small plaintext objects through which backups and prunes coordinate (docs/FORMAT.md §6;
// their keys: layout.ts). None holds a secret or a path: blob names are already public, run
// markers name a snapshot id that will be public anyway, and the lock names a host. Repository
// is the door to these; the store stays inside repo/.

export interface Notice {
  /** Where the notice is stored: it names the notice in messages and reports. */
  key: string;
  /** When the notice became visible in the store (its mtime, ms since epoch). */
  published: number;
  /** Blobs may be deleted from this time on, if nothing references them then. */
  notBefore: number;
  blobs: string[];
  host: string;
}

export interface RunMarker {
  snapshotId: string;
  /** Newest heartbeat (store time, ms since epoch). */
  lastBeat: number;
  /** First heartbeat: when the run started. */
  started: number;
  /** The run wrote its end marker (it succeeded or failed; it will reference nothing more). */
  finished: boolean;
  /** Its markers' keys, for Repository.deleteRun. */
  keys: string[];
}

const NAME = /^[0-9a-f]{64}$/;

function json(data: unknown): Buffer {
  return Buffer.from(`${JSON.stringify(data, null, 1)}\n`);
}

async function readJson(store: Store, key: string, options: CallOptions): Promise<Record<string, unknown>> {
  const bytes = await getBytes(store, key, options);
  try {
    const v = JSON.parse(bytes.toString("utf8")) as unknown;
    if (v && typeof v === "object" && !Array.isArray(v)) return v as Record<string, unknown>;
  } catch {
    // fall through
  }
  throw new IntegrityError(`${store.location} ${key}`, "is not a valid JSON object");
}

// ---- backup heartbeats ---------------------------------------------------------------------

/** Writes a heartbeat for a running backup. Put-only: a backup may not delete anything. */
export async function beat(store: Store, snapshotId: string, now: number, options: CallOptions = {}): Promise<void> {
  await store.put(heartbeatKey(snapshotId, now), json({ snapshot: snapshotId, host: hostname(), time: new Date(now).toISOString() }), options);
}

/** Marks a run as ended, whatever its outcome; written after its snapshot, if any. */
export async function endRun(store: Store, snapshotId: string, options: CallOptions = {}): Promise<void> {
  await store.put(runEndKey(snapshotId), json({ snapshot: snapshotId, host: hostname(), time: new Date().toISOString() }), options);
}

/** Store time of a run's first heartbeat, or undefined when the store holds none. */
export async function runStarted(store: Store, snapshotId: string, options: CallOptions = {}): Promise<number | undefined> {
  let started: number | undefined;
  for await (const info of store.list(runPrefix(snapshotId), options)) {
    const t = info.mtime.getTime();
    started = started === undefined ? t : Math.min(started, t);
  }
  return started;
}

/**
 * Backup runs seen through their heartbeats. Times are the store's own (object mtimes), so the
 * clocks of the backed-up hosts do not matter.
 */
export async function listRuns(store: Store, options: CallOptions = {}): Promise<RunMarker[]> {
  const runs = new Map<string, RunMarker>();
  for await (const info of store.list(RUNS_PREFIX, options)) {
    const m = parseRunKey(info.key);
    if (!m) continue;
    const id = m.snapshotId;
    const t = info.mtime.getTime();
    const run = runs.get(id) ?? { snapshotId: id, lastBeat: t, started: t, finished: false, keys: [] };
    if (m.end) run.finished = true;
    else {
      run.lastBeat = Math.max(run.lastBeat, t);
      run.started = Math.min(run.started, t);
    }
    run.keys.push(info.key);
    runs.set(id, run);
  }
  return [...runs.values()];
}

// ---- prune notices -------------------------------------------------------------------------

export async function publishNotice(store: Store, blobs: readonly string[], now: number, notBefore: number, options: CallOptions = {}): Promise<Notice> {
  const key = noticeKey("pending", `${now}-${randomBytes(4).toString("hex")}.json`);
  const host = hostname();
  await store.put(key, json({ published: now, not_before: notBefore, host, blobs }), options);
  // Runs are compared with the notice in store time; ask the store what time that was.
  const { mtime } = await store.stat(key, options);
  return { key, published: mtime.getTime(), notBefore, blobs: [...blobs], host };
}

export interface NoticeListOptions extends CallOptions {
  /** Only notices published at or after this store time. */
  since?: number;
  /** Called for a notice that is not valid JSON, which is skipped. */
  onBad?: (key: string, err: unknown) => void;
}

/**
 * Reads the notices of one kind. A notice that does not parse is reported through `onBad`, not
 * thrown: anyone with put access can write here, and junk must not stop backups. A notice that
 * cannot be read (the store failed) is an error.
 */
export async function listNotices(
  store: Store,
  kind: NoticeKind,
  options: NoticeListOptions = {},
): Promise<Notice[]> {
  const out: Notice[] = [];
  for await (const info of store.list(noticePrefix(kind), options)) {
    // The store's mtime, not the writer's clock, says when a notice became visible.
    const published = info.mtime.getTime();
    if (!isNoticeKey(info.key) || (options.since !== undefined && published < options.since)) continue;
    try {
      const v = await readJson(store, info.key, options);
      const blobs = Array.isArray(v["blobs"]) ? (v["blobs"] as unknown[]).filter((b): b is string => typeof b === "string" && NAME.test(b)) : [];
      out.push({
        key: info.key,
        published,
        notBefore: Number(v["not_before"] ?? 0),
        blobs,
        host: String(v["host"] ?? "?"),
      });
    } catch (err) {
      if (isNotFound(err)) continue; // deleted between list and get: a prune finished with it
      // Junk (anyone with put access can write here) is reported and skipped; a notice that
      // could not be *read* is not skipped: a backup that missed one could reference blobs a
      // prune is about to delete.
      if (err instanceof IntegrityError) options.onBad?.(info.key, err);
      else throw err;
    }
  }
  return out.sort((a, b) => a.published - b.published);
}

/** Moves a notice from pending to done: the record stays for backups with old indexes. */
export async function retireNotice(store: Store, notice: Notice, now: number, options: CallOptions = {}): Promise<void> {
  await store.put(noticeKey("done", noticeName(notice.key)), json({ published: notice.published, not_before: notice.notBefore, deleted: now, host: notice.host, blobs: notice.blobs }), options);
  await store.delete(notice.key, options);
}

// ---- prune lock ----------------------------------------------------------------------------

export interface PruneLock {
  release(): Promise<void>;
}

/**
 * Takes the repository's prune lock: an object written only if absent, with an expiry so a
 * prune that died does not block forever. After writing, the lock is read back and must be
 * ours, which settles the race of two prunes both removing an expired lock.
 */
export async function acquirePruneLock(store: Store, now: number, ttlMs: number, options: CallOptions = {}): Promise<PruneLock> {
  const nonce = randomBytes(8).toString("hex");
  const body = { host: hostname(), pid: process.pid, nonce, created: new Date(now).toISOString(), expires: now + ttlMs };
  for (let attempt = 0; attempt < 2; attempt++) {
    if (await store.put(PRUNE_LOCK, json(body), options)) {
      const back = await readJson(store, PRUNE_LOCK, options);
      if (back["nonce"] === nonce) {
        return { release: () => store.delete(PRUNE_LOCK, options) };
      }
    }
    const holder = await readJson(store, PRUNE_LOCK, options).catch((err: unknown) => {
      if (isNotFound(err)) return undefined;
      throw err;
    });
    if (holder === undefined) continue;
    if (typeof holder["expires"] === "number" && holder["expires"] > now && holderAlive(holder["host"], holder["pid"])) {
      throw new LockedError(
        `${store.location} ${PRUNE_LOCK}`,
        `another prune is running (host ${String(holder["host"])}, pid ${String(holder["pid"])}, since ${String(holder["created"])}); ` +
          `it expires at ${new Date(holder["expires"]).toISOString()}`,
      );
    }
    await store.delete(PRUNE_LOCK, options); // expired, or its prune died on this host
  }
  throw new LockedError(`${store.location} ${PRUNE_LOCK}`, "could not take the prune lock; another prune keeps taking it");
}

