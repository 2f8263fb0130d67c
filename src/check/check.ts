import { randomInt } from "node:crypto";
import type { X25519Identity } from "../crypto/keys.js";
import type { ChunkLocation } from "../model/chunk.js";
import { frameChunksEach } from "../pack/frame.js";
import type { Repository, SnapshotObject } from "../repo/repository.js";
import { withSnapshot } from "../snapshot/open.js";
import type { SnapshotReader } from "../snapshot/read.js";
import { errorMessage } from "../errors.js";
import { Pace } from "../util/pace.js";

// Verifies that snapshots can be restored. Without reading data: every blob a snapshot needs
// is listed, with the size the snapshot expects. With --read-data (or a subset): each needed
// blob is downloaded once, its SHA-256 checked against its name, and every chunk any snapshot
// takes from it decrypted, decompressed and checked against its id.

export interface CheckOptions {
  repo: Repository;
  identities: readonly X25519Identity[];
  /** Fraction of referenced blobs to download and verify, 0..1. 0 = listing only. */
  readData: number;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

export interface Damage {
  snapshot: string;
  blob: string;
  problem: string;
  /**
   * Chunks of the blob found damaged one by one, when the blob could be read in parts; then
   * `files` are the files that use them. Otherwise every file that uses the blob.
   */
  damagedChunks?: number;
  /** Files of the snapshot that use the blob or its damaged chunks (up to 20). */
  files: string[];
  moreFiles: number;
}

export interface CheckReport {
  snapshots: number;
  blobsReferenced: number;
  blobsRead: number;
  bytesRead: number;
  damage: Damage[];
  /** Snapshot databases that could not be read at all. */
  unreadable: { snapshot: string; problem: string }[];
}

interface Need {
  size: number;
  /** Snapshots that use the blob. */
  users: Set<string>;
  /** Chunks needed from it, by frame offset and offset inside the frame (only when data will be read). */
  chunks: Map<string, ChunkLocation>;
}

const FILES_SHOWN = 20;

export async function check(o: CheckOptions): Promise<CheckReport> {
  const { repo, signal } = o;
  const log = o.log ?? (() => {});
  const snapshots = await repo.listSnapshots({ signal });
  const stored = new Map<string, number>((await repo.listBlobs({ signal })).map((b) => [b.name, b.size]));
  const needs = new Map<string, Need>();
  const report: CheckReport = { snapshots: snapshots.length, blobsReferenced: 0, blobsRead: 0, bytesRead: 0, damage: [], unreadable: [] };
  const problems = new Map<string, string>(); // blob → problem
  const damagedChunks = new Map<string, string[]>(); // blob → the chunks that fail alone

  for (const s of snapshots) {
    try {
      await withSnapshot(repo, s, o.identities, async (r) => collect(r, s, needs, o.readData > 0, signal), signal);
    } catch (err) {
      if (signal?.aborted) throw err;
      report.unreadable.push({ snapshot: s.id, problem: errorMessage(err) });
    }
  }
  report.blobsReferenced = needs.size;
  for (const [name, need] of needs) {
    const size = stored.get(name);
    if (size === undefined) problems.set(name, "blob is missing");
    else if (size !== need.size) problems.set(name, `blob has ${size} bytes, snapshots expect ${need.size}`);
  }

  const candidates = [...needs.keys()].filter((n) => !problems.has(n));
  for (const name of sample(candidates, o.readData)) {
    signal?.throwIfAborted();
    const need = needs.get(name)!;
    try {
      for await (const _ of repo.blobReader(o.identities).readBlob(name, [...need.chunks.values()], { signal })) void _;
      report.blobsRead++;
      report.bytesRead += need.size;
    } catch (err) {
      if (signal?.aborted) throw err;
      problems.set(name, errorMessage(err));
      const bad = await damagedChunksOf(o, name, [...need.chunks.values()]);
      if (bad) damagedChunks.set(name, bad);
    }
  }

  // Name the damaged snapshots and files: a second pass, only over snapshots that use a bad blob.
  for (const s of snapshots) {
    const bad = [...problems].filter(([blob]) => needs.get(blob)?.users.has(s.id));
    if (bad.length === 0) continue;
    await withSnapshot(repo, s, o.identities, async (r) => {
      for (const [blob, problem] of bad) {
        const chunks = damagedChunks.get(blob);
        const files = chunks ? r.filesUsingChunks(chunks) : r.filesUsing(blob);
        report.damage.push({
          snapshot: s.id,
          blob,
          problem,
          ...(chunks ? { damagedChunks: chunks.length } : {}),
          files: files.slice(0, FILES_SHOWN),
          moreFiles: Math.max(0, files.length - FILES_SHOWN),
        });
        log(`snapshot ${s.id}: blob ${blob}: ${problem}`);
      }
    }, signal);
  }
  return report;
}

/**
 * After a whole read of `blob` failed: its chunks read again by ranged reads, each on its own, so
 * one damaged segment names only the files that need it (as restore fails only those). Undefined
 * when that cannot narrow it down (the header fails, or every chunk verifies and the damage is
 * elsewhere, e.g. in bytes no chunk uses).
 */
async function damagedChunksOf(o: CheckOptions, blob: string, chunks: readonly ChunkLocation[]): Promise<string[] | undefined> {
  const object = o.repo.blobObject(blob);
  const bad = new Set<string>();
  try {
    for await (const f of o.repo.blobReader(o.identities).readFramesRanged(blob, chunks, { signal: o.signal })) {
      if ("error" in f) {
        for (const c of f.chunks) bad.add(c.id);
        continue;
      }
      const out = await frameChunksEach(f.frame, f.chunks, object).catch(() => f.chunks.map(() => new Error()));
      out.forEach((c, i) => {
        if (c instanceof Error) bad.add(f.chunks[i]!.id);
      });
    }
  } catch (err) {
    if (o.signal?.aborted) throw err;
    return undefined;
  }
  return bad.size > 0 ? [...bad] : undefined;
}

async function collect(r: SnapshotReader, s: SnapshotObject, needs: Map<string, Need>, withChunks: boolean, signal?: AbortSignal): Promise<void> {
  const pace = new Pace(signal, "blobs-listed");
  for (const b of r.blobs()) {
    await pace.tick();
    const need = needs.get(b.name) ?? { size: b.size, users: new Set<string>(), chunks: new Map<string, ChunkLocation>() };
    need.users.add(s.id);
    needs.set(b.name, need);
  }
  if (!withChunks) return;
  const chunks = new Pace(signal, "check-chunks");
  for (const loc of r.chunkLocations()) {
    await chunks.tick();
    needs.get(loc.blob)!.chunks.set(`${loc.offset}:${loc.rawOffset}`, loc);
  }
}

/** A random subset of about `fraction` of the items (all of them at 1, none at 0). */
function sample<T>(items: readonly T[], fraction: number): T[] {
  if (fraction >= 1) return [...items];
  if (fraction <= 0) return [];
  const want = Math.max(1, Math.round(items.length * fraction));
  const pool = [...items];
  for (let i = pool.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [pool[i], pool[j]] = [pool[j]!, pool[i]!];
  }
  return pool.slice(0, want);
}
