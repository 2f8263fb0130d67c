import { stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import type { Command } from "commander";
import { NotFoundError } from "../errors.js";
import { Restorer, type RestoreSummary } from "../restore/restorer.js";
import { formatBytes, formatDuration } from "../util/units.js";
import { loadIdentities, repoFromArgs } from "./context.js";
import { EXIT } from "./exit.js";
import type { Io } from "./io.js";
import { startProgress } from "./progress.js";
import { withSnapshot } from "../snapshot/open.js";

interface Flags {
  config?: string;
  identity?: string;
  indexPrefix?: string;
  host?: string;
  json?: boolean;
}

function common(cmd: Command): Command {
  return cmd
    .option("-c, --config <file>", "take the repository from this config instead of BUCKET PREFIX")
    .option("--identity <file>", "age identity file (default: VAULTIK_PRIVATE_KEY or VAULTIK_PRIVATE_KEY_FILE)")
    .option("--index-prefix <prefix>", "where snapshots live in the repository")
    .option("--host <host>", "with `latest`: the latest snapshot of this host")
    .option("--json", "print a JSON summary");
}

export function registerRestore(program: Command, io: Io): void {
  common(
    program
      .command("restore")
      .description("restore a whole snapshot into TARGET_DIR (needs the private key)")
      .argument("<args...>", "[BUCKET PREFIX] SNAPSHOT_ID TARGET_DIR   (SNAPSHOT_ID may be `latest` or a unique prefix)"),
  ).action(async (args: string[], flags: Flags) => {
    const { repo, rest } = await repoFromArgs(args, 2, flags);
    const [ref, target] = rest as [string, string];
    io.exitCode = await restoreInto(io, flags, repo, ref, async () => ({ target: resolve(target) }));
  });

  common(
    program
      .command("fetch")
      .description("restore one file or directory subtree of a snapshot, reading only the blob ranges it needs")
      .argument("<args...>", "[BUCKET PREFIX] SNAPSHOT_ID FILEPATH TARGET"),
  ).action(async (args: string[], flags: Flags) => {
    const { repo, rest } = await repoFromArgs(args, 3, flags);
    const [ref, filePath, target] = rest as [string, string, string];
    const wanted = filePath.replace(/^\/+|\/+$/g, "");
    io.exitCode = await restoreInto(io, flags, repo, ref, async (reader) => {
      const entry = reader.entry(wanted);
      if (!entry) throw new NotFoundError(`${filePath}`, `is not in snapshot ${reader.meta.id}`);
      const dest = resolve(target);
      if (entry.type === "dir") {
        return { target: dest, prefix: wanted, destination: (p) => (p === wanted ? "" : p.slice(wanted.length + 1)) };
      }
      // A single file or symlink lands at TARGET, or inside it when TARGET is a directory.
      const isDir = await stat(dest).then((s) => s.isDirectory(), () => false);
      const final = isDir ? join(dest, basename(wanted)) : dest;
      return { target: dirname(final), prefix: wanted, destination: () => basename(final) };
    });
  });
}

type Plan = { target: string; prefix?: string; destination?: (path: string) => string };

async function restoreInto(
  io: Io,
  flags: Flags,
  repo: Awaited<ReturnType<typeof repoFromArgs>>["repo"],
  ref: string,
  plan: (reader: import("../snapshot/read.js").SnapshotReader) => Promise<Plan>,
): Promise<number> {
  const identities = loadIdentities(flags.identity);
  const snapshot = await repo.findSnapshot(ref, { host: flags.host });
  const abort = new AbortController();
  const stopSignals = io.onInterrupt(() => abort.abort());
  const started = Date.now();
  try {
    const summary = await withSnapshot(
      repo,
      snapshot,
      identities,
      async (reader) => {
        const p = await plan(reader);
        const restorer = new Restorer({ repo, identities, snapshot: reader, ...p, signal: abort.signal });
        const stop = flags.json
          ? () => {}
          : startProgress("restore", {
              files: () => restorer.progress.files,
              bytes: () => restorer.progress.bytesWritten,
              totals: () => ({ files: restorer.progress.files, bytes: restorer.progress.bytesTotal }),
            }, io.stderr);
        try {
          return await restorer.run();
        } finally {
          stop();
        }
      },
      abort.signal,
    );
    report(io, flags, snapshot.id, summary, Date.now() - started);
    return summary.errors.length > 0 ? EXIT.FAILURE : EXIT.OK;
  } finally {
    stopSignals();
  }
}

function report(io: Io, flags: Flags, id: string, s: RestoreSummary, ms: number): void {
  if (flags.json) io.out(JSON.stringify({ snapshotId: id, ...s, durationMs: ms }, null, 2));
  else {
    io.err(
      `restored snapshot ${id}: ${s.files} files, ${s.dirs} directories, ${s.symlinks} symlinks, ` +
        `${formatBytes(s.bytes)} from ${s.blobs} blob(s) in ${formatDuration(ms)}`,
    );
  }
  for (const e of s.errors) io.err(`vaultik: error: ${e.path}: ${e.message}`);
}
