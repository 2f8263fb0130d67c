import type { BlobName } from "../model/ids.js";

// Every key of a repository (docs/FORMAT.md §2 and §6), in one place. Nothing outside repo/
// builds or parses a key: callers speak of blobs, snapshots, runs, notices and the lock.
//
//   blobs/ab/cd/abcd…                    content-addressed blobs
//   <index prefix><snapshot-id>.sqlite.zst.age   snapshot databases
//   runs/<snapshot-id>/<ms>.json         backup heartbeats: "a backup with this id is running"
//   runs/<snapshot-id>/done.json         the run ended (whatever its outcome)
//   prune/pending/<ms>-<rand>.json       blobs a prune has announced it will delete
//   prune/done/<ms>-<rand>.json          the same notice after its blobs were deleted (kept 30 days)
//   locks/prune.json                     one prune at a time

export const BLOBS_PREFIX = "blobs/";

/** `blobs/ab/cd/abcd…`: two levels of fan-out keep directory stores and listings fast. */
export function blobKey(name: string): string {
  return `${BLOBS_PREFIX}${name.slice(0, 2)}/${name.slice(2, 4)}/${name}`;
}

const BLOB_KEY = /^blobs\/([0-9a-f]{2})\/([0-9a-f]{2})\/([0-9a-f]{64})$/;

/** The blob name of a key under `blobs/`, or undefined for anything else. */
export function blobNameOfKey(key: string): BlobName | undefined {
  const m = BLOB_KEY.exec(key);
  if (!m || !m[3]?.startsWith(`${m[1]}${m[2]}`)) return undefined;
  return m[3] as BlobName;
}

export const DEFAULT_INDEX_PREFIX = "index/";
export const SNAPSHOT_SUFFIX = ".sqlite.zst.age";

/** An index prefix as the user wrote it, with the trailing `/` keys need. */
export function normalizeIndexPrefix(prefix: string): string {
  return prefix.endsWith("/") ? prefix : `${prefix}/`;
}

export function snapshotKey(indexPrefix: string, id: string): string {
  return `${indexPrefix}${id}${SNAPSHOT_SUFFIX}`;
}

/** The snapshot id of a key directly under the index prefix, unparsed; undefined for others. */
export function snapshotIdOfKey(indexPrefix: string, key: string): string | undefined {
  const rest = key.slice(indexPrefix.length);
  if (!key.startsWith(indexPrefix) || rest.includes("/") || !rest.endsWith(SNAPSHOT_SUFFIX)) return undefined;
  return rest.slice(0, -SNAPSHOT_SUFFIX.length);
}

export const RUNS_PREFIX = "runs/";

export function runPrefix(snapshotId: string): string {
  return `${RUNS_PREFIX}${snapshotId}/`;
}

export function heartbeatKey(snapshotId: string, ms: number): string {
  return `${runPrefix(snapshotId)}${ms}.json`;
}

export function runEndKey(snapshotId: string): string {
  return `${runPrefix(snapshotId)}done.json`;
}

const RUN_KEY = /^runs\/([^/]+)\/(\d+|done)\.json$/;

/** What a key under `runs/` records: a heartbeat or the end of a run. */
export function parseRunKey(key: string): { snapshotId: string; end: boolean } | undefined {
  const m = RUN_KEY.exec(key);
  return m ? { snapshotId: m[1]!, end: m[2] === "done" } : undefined;
}

export type NoticeKind = "pending" | "done";

export function noticePrefix(kind: NoticeKind): string {
  return `prune/${kind}/`;
}

/** `name` is the notice's file name, the same while pending and once done. */
export function noticeKey(kind: NoticeKind, name: string): string {
  return `${noticePrefix(kind)}${name}`;
}

export function noticeName(key: string): string {
  return key.slice(key.lastIndexOf("/") + 1);
}

const NOTICE_NAME = /(\d+)-[0-9a-f]+\.json$/;

export function isNoticeKey(key: string): boolean {
  return NOTICE_NAME.test(key);
}

export const PRUNE_LOCK = "locks/prune.json";
