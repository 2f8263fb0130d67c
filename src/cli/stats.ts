import type { Command } from "commander";
import { reclaimable, type Reclaimable } from "../prune/reclaimable.js";
import type { X25519Identity } from "../crypto/keys.js";
import type { Repository, SnapshotObject } from "../repo/repository.js";
import { withSnapshot, type OpenOptions } from "../snapshot/open.js";
import { ChunkTally, type Bytes, type SnapshotTally } from "../snapshot/tally.js";
import { formatBytes, formatDuration } from "../util/units.js";
import { cacheFor } from "./cache.js";
import { loadIdentities, repoFromArgs } from "./context.js";
import { interruptible, type Io } from "./io.js";
import { readOptions, type ReadFlags } from "./options.js";
import { table } from "./snapshots.js";

// `vaultik stats`: per snapshot what it holds, added and shares; per repository what is stored,
// how well it deduplicates and compresses, and what prunes could free. From the snapshot
// databases and a blob listing only.

export interface SnapshotStats {
  id: string;
  host: string;
  time: string;
  files: number;
  /** Sum of file sizes. */
  size: number;
  chunks: Bytes;
  newData: Bytes;
  sharedData: Bytes;
}

export interface RepositoryStats {
  location: string;
  snapshots: number;
  /** Sum of the listed blobs' sizes: what the bucket holds of data. */
  storedBytes: number;
  blobs: number;
  uniqueChunks: Bytes;
  /** Sum of every snapshot's size. */
  logicalBytes: number;
  /** logicalBytes / unique raw bytes; null without chunks. */
  dedupRatio: number | null;
  /** Unique raw / unique stored bytes; null without chunks. */
  compressionRatio: number | null;
  pruneCouldFree: Reclaimable;
}

export function registerStats(program: Command, io: Io): void {
  const command = readOptions(
    program
      .command("stats")
      .description("sizes per snapshot (files, size, new and shared data) and of the repository (stored, dedup, compression, what prune could free)")
      .argument("[args...]", "[BUCKET [PREFIX]] [SNAPSHOT…]; naming snapshots after BUCKET needs PREFIX too (\"\" for none)"),
    "print JSON with every figure",
  );
  // readOptions' --host is about `latest`; here it also picks the snapshots shown.
  const host = command.options.find((o) => o.long === "--host");
  if (host) host.description = "show only snapshots of this host (and `latest` means its latest)";
  command
    .addHelpText(
      "after",
      [
        "",
        "Every snapshot is read (new and shared data compare each with all the others); the table shows",
        "all of them, the ones named, or those of --host. New data: chunks no earlier snapshot uses.",
        "Shared: chunks another snapshot uses too. Stored: compressed bytes (zstd frames).",
        "",
        "Examples:",
        "  vaultik stats my-bucket hosts/web",
        "  vaultik stats ./repo \"\" latest --json",
      ].join("\n"),
    )
    .action(async (args: string[], flags: ReadFlags) => {
      // Like forget: after BUCKET PREFIX (or everything, with --config) each argument is a snapshot.
      const refs = flags.config !== undefined ? args : args.slice(2);
      const { repo } = await repoFromArgs(flags.config !== undefined ? [] : args.slice(0, 2), 0, flags);
      const identities = loadIdentities(flags.identity);
      const result = await interruptible(io, async (signal) => {
        const all = await repo.listSnapshots({ signal });
        const chosen = new Set<string>();
        for (const ref of refs) chosen.add((await repo.findSnapshot(ref, { host: flags.host, signal })).id);
        const shown = all.filter((s) => (refs.length > 0 ? chosen.has(s.id) : flags.host === undefined || s.host === flags.host));
        const { per, repository } = await gather(repo, all, identities, { cache: cacheFor(flags) }, signal);
        return { snapshots: shown.map((s) => snapshotStats(s, per.get(all.indexOf(s))!)), repository };
      });
      if (flags.json) io.out(JSON.stringify(result, null, 2));
      else io.out(describe(result.snapshots, result.repository));
    });
}

/** Reads every snapshot (oldest first) into a tally, then lists the blobs: the figures of each snapshot (by place in `all`) and of the repository. */
async function gather(
  repo: Repository,
  all: readonly SnapshotObject[],
  identities: readonly X25519Identity[],
  open: OpenOptions,
  signal: AbortSignal,
): Promise<{ per: Map<number, SnapshotTally>; repository: RepositoryStats }> {
  const tally = await ChunkTally.open();
  try {
    for (const [order, s] of all.entries()) {
      signal.throwIfAborted();
      await withSnapshot(repo, s, identities, async (reader) => tally.add(reader, order), signal, open);
    }
    const per = tally.snapshots();
    const blobs = await repo.listBlobs({ signal });
    const unique = tally.unique();
    const logicalBytes = [...per.values()].reduce((n, t) => n + t.logical, 0);
    const repository: RepositoryStats = {
      location: `${repo.location}/${repo.indexPrefix}`,
      snapshots: all.length,
      storedBytes: blobs.reduce((n, b) => n + b.size, 0),
      blobs: blobs.length,
      uniqueChunks: unique,
      logicalBytes,
      dedupRatio: unique.raw > 0 ? logicalBytes / unique.raw : null,
      compressionRatio: unique.stored > 0 ? unique.raw / unique.stored : null,
      pruneCouldFree: await reclaimable(repo, blobs, tally.referencedBlobs(), new Set(all.map((s) => s.id)), Date.now(), signal),
    };
    return { per, repository };
  } finally {
    await tally.close();
  }
}

function snapshotStats(s: SnapshotObject, t: SnapshotTally): SnapshotStats {
  return { id: s.id, host: s.host, time: s.time.toISOString(), files: t.files, size: t.logical, chunks: t.total, newData: t.added, sharedData: t.shared };
}

function describe(snapshots: readonly SnapshotStats[], r: RepositoryStats): string {
  const rows = snapshots.map((s) => [
    s.id,
    s.host,
    s.time.replace("T", " ").replace(/\.\d+Z$/, ""),
    String(s.files),
    formatBytes(s.size),
    formatBytes(s.newData.raw),
    formatBytes(s.newData.stored),
    formatBytes(s.sharedData.raw),
  ]);
  const lines = rows.length > 0 ? [table([["ID", "HOST", "TIME (UTC)", "FILES", "SIZE", "NEW", "NEW STORED", "SHARED"], ...rows]), ""] : [];
  const ratio = (x: number | null) => (x === null ? "-" : x.toFixed(2));
  const amount = (a: { blobs: number; bytes: number }) => `${formatBytes(a.bytes)} in ${a.blobs} blob${a.blobs === 1 ? "" : "s"}`;
  const p = r.pruneCouldFree;
  lines.push(
    `repository ${r.location}`,
    table([
      ["  snapshots:", String(r.snapshots)],
      ["  stored:", amount({ blobs: r.blobs, bytes: r.storedBytes })],
      ["  unique chunks:", `${r.uniqueChunks.chunks} (${formatBytes(r.uniqueChunks.raw)}, ${formatBytes(r.uniqueChunks.stored)} stored)`],
      ["  logical size:", `${formatBytes(r.logicalBytes)} (all snapshots)`],
      ["  dedup ratio:", ratio(r.dedupRatio)],
      ["  compression ratio:", ratio(r.compressionRatio)],
      ["  prune could free:", `${amount(p.unreferenced)} no snapshot references`],
      ["    now:", `${amount(p.deletableNow)} deletable, ${amount(p.announceNow)} to announce`],
      ["    later:", `${amount(p.announced)} announced, waiting; ${amount(p.young)} younger than ${formatDuration(p.graceMs)} or held by a running backup`],
    ]),
  );
  return lines.join("\n");
}
