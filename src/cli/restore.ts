import { lstatSync, statSync, type Stats } from "node:fs";
import { stat } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import type { Command } from "commander";
import { IntegrityError, UsageError } from "../errors.js";
import { displayPath } from "../model/path-bytes.js";
import { findEntry } from "../snapshot/typed-path.js";
import type { Repository } from "../repo/repository.js";
import type { EntryProblem } from "../restore/report.js";
import { Restorer, type RestoreSummary } from "../restore/restorer.js";
import { dryRun, type DryRunSummary } from "../restore/dry-run.js";
import { Selection } from "../restore/selection.js";
import type { SnapshotReader } from "../snapshot/read.js";
import { formatBytes, formatDuration } from "../util/units.js";
import { loadIdentities, repoFromArgs } from "./context.js";
import { EXIT } from "./exit.js";
import type { Io } from "./io.js";
import { startProgress } from "./progress.js";
import { dumpRegularFile, KIND } from "./dump.js";
import { streamToStdout } from "./stdout-stream.js";
import { withSnapshot } from "../snapshot/open.js";
import { cacheFor } from "./cache.js";
import { readOptions, type ReadFlags } from "./options.js";

interface Flags extends ReadFlags {
  allErrors?: boolean;
  numericOwner?: boolean;
  include: string[];
  exclude: string[];
  dryRun?: boolean;
}

const collect = (value: string, previous: string[]) => [...previous, value];

/** Failures (and warnings) the text output names before it says how many more there are. */
const SHOWN = 20;

function common(cmd: Command): Command {
  return readOptions(cmd, "print a JSON summary (it lists every failed entry)")
    .option("--all-errors", `name every entry that failed, not only the first ${SHOWN}`)
    .option("--numeric-owner", "as root: give owners the recorded user and group ids, not this host's ids for the recorded names")
    .option("--include <pattern>", "restore only what matches (gitignore-style, from the snapshot root: `*.pdf`, `/home/me/docs`, `logs/`); repeatable", collect, [])
    .option("--exclude <pattern>", "leave out what matches (same patterns; wins over --include); repeatable", collect, [])
    .option("--dry-run", "read only the snapshot database: list what would be restored (stdout) and how much would be written and read (stderr), write nothing");
}

export function registerRestore(program: Command, io: Io): void {
  common(
    program
      .command("restore")
      .description("restore a whole snapshot into TARGET_DIR (needs the private key)")
      .argument("<args...>", "[BUCKET [PREFIX]] SNAPSHOT_ID TARGET_DIR   (SNAPSHOT_ID may be `latest` or a unique prefix)"),
  )
    .addHelpText(
      "after",
      `
Examples:
  vaultik restore -c vaultik.yml latest /mnt/restore --include '*.pdf' --exclude /home/me/tmp
  vaultik restore -c vaultik.yml latest /mnt/restore --include /etc/nginx --dry-run   (what, and how much)`,
    )
    .action(async (args: string[], flags: Flags) => {
    const { repo, rest, config } = await repoFromArgs(args, ["SNAPSHOT_ID", "TARGET_DIR"], flags);
    const [ref, target] = rest as [string, string];
    const dest = resolve(target);
    assertDirectoryTarget("TARGET_DIR", dest);
    io.exitCode = await restoreInto(io, flags, repo, ref, config?.memoryLimit, async () => ({ target: dest }));
  });

  common(
    program
      .command("fetch")
      .description("restore one file or directory subtree of a snapshot, reading only the blob ranges it needs; TARGET `-` writes one file to stdout")
      .argument("<args...>", "[BUCKET [PREFIX]] SNAPSHOT_ID FILEPATH TARGET   (FILEPATH as listed: a byte that is not UTF-8 as \\xHH)"),
  ).action(async (args: string[], flags: Flags) => {
    const { repo, rest, config } = await repoFromArgs(args, ["SNAPSHOT_ID", "FILEPATH", "TARGET"], flags);
    const [ref, filePath, target] = rest as [string, string, string];
    if (target === "-") {
      if (flags.json) throw new UsageError("--json", "TARGET - writes the file itself to stdout; leave out --json");
      for (const [given, option] of [[flags.dryRun, "--dry-run"], [flags.include.length > 0, "--include"], [flags.exclude.length > 0, "--exclude"]] as const) {
        if (given) throw new UsageError(option, "TARGET - writes one file to stdout; leave it out");
      }
      io.exitCode = await fetchToStdout(io, flags, repo, ref, filePath);
      return;
    }
    const dest = resolve(target);
    io.exitCode = await restoreInto(io, flags, repo, ref, config?.memoryLimit, async (reader) => {
      const entry = findEntry(reader, filePath);
      const wanted = entry.path;
      if (entry.type === "dir") {
        assertDirectoryTarget("TARGET", dest);
        return { target: dest, prefix: wanted, destination: (p) => (p === wanted ? "" : p.slice(wanted.length + 1)) };
      }
      // A single file or symlink lands at TARGET, or inside it when TARGET is a directory.
      const isDir = await stat(dest).then((s) => s.isDirectory(), () => false);
      const final = isDir ? join(dest, basename(wanted)) : dest;
      assertDirectoryTarget("TARGET", dirname(final));
      // Only the entry itself lands there; the snapshot checks refuse anything recorded below a
      // file or symlink, and this makes sure no such entry could ever land on the same name.
      const destination = (p: string) => {
        if (p === wanted) return basename(final);
        throw new IntegrityError(reader.object, `"${displayPath(p)}": refusing an entry below "${displayPath(wanted)}", which the snapshot records as a ${entry.type}`);
      };
      return { target: dirname(final), prefix: wanted, destination };
    });
  });
}

/**
 * Refuses a target that is, or lies below, something other than a directory, before anything is
 * read: mkdir would fail with a bare EEXIST or ENOTDIR that names no argument.
 */
function assertDirectoryTarget(argument: string, target: string): void {
  for (let d = target; ; d = dirname(d)) {
    const s = statIfThere(() => lstatSync(d));
    if (s?.isDirectory()) return;
    // A symlink to a directory is a directory the user chose; mkdir follows it.
    if (s?.isSymbolicLink() && statIfThere(() => statSync(d))?.isDirectory()) return;
    if (s !== undefined) throw new UsageError(argument, `${d} is not a directory${d === target ? "" : ` (in ${target})`}`);
    if (d === dirname(d)) return;
  }
}

/** The stat, or undefined when nothing is there (ENOTDIR: a parent is not a directory; checked next). */
function statIfThere(stat: () => Stats): Stats | undefined {
  try {
    return stat();
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw err;
  }
}

/** `fetch … -`: the file's bytes on stdout and nothing else there, like `restic dump`. */
async function fetchToStdout(io: Io, flags: Flags, repo: Repository, ref: string, filePath: string): Promise<number> {
  const identities = loadIdentities(flags.identity);
  const snapshot = await repo.findSnapshot(ref, { host: flags.host });
  return streamToStdout(io, async (signal) => {
    await withSnapshot(
      repo,
      snapshot,
      identities,
      async (reader) => {
        const entry = findEntry(reader, filePath);
        if (entry.type !== "file") throw new UsageError("FILEPATH", `${filePath} is a ${KIND[entry.type]}; TARGET - writes one regular file to stdout`);
        await dumpRegularFile(io, { repo, identities, snapshot: reader, entry, signal });
      },
      signal,
      { cache: cacheFor(flags) },
    );
    return EXIT.OK;
  });
}

type Plan = { target: string; prefix?: string; destination?: (path: string) => string };

async function restoreInto(
  io: Io,
  flags: Flags,
  repo: Repository,
  ref: string,
  /** The config's memory_limit, when a config names the repository (else restoreBudget's default). */
  memoryLimit: number | undefined,
  plan: (reader: SnapshotReader) => Promise<Plan>,
): Promise<number> {
  const identities = loadIdentities(flags.identity);
  const snapshot = await repo.findSnapshot(ref, { host: flags.host });
  const abort = new AbortController();
  const stopSignals = io.onInterrupt(() => abort.abort());
  const started = Date.now();
  const selection = flags.include.length + flags.exclude.length > 0 ? new Selection(flags.include, flags.exclude) : undefined;
  try {
    if (flags.dryRun) {
      await withSnapshot(repo, snapshot, identities, async (reader) => {
        const p = await plan(reader);
        await reportDryRun(io, flags, snapshot.id, (onEntry) => dryRun({ snapshot: reader, prefix: p.prefix, selection, signal: abort.signal, onEntry }));
      }, abort.signal, { cache: cacheFor(flags) });
      return EXIT.OK;
    }
    const summary = await withSnapshot(
      repo,
      snapshot,
      identities,
      async (reader) => {
        const p = await plan(reader);
        const restorer = new Restorer({ repo, identities, snapshot: reader, ...p, selection, memoryLimit, numericOwner: flags.numericOwner === true, signal: abort.signal });
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
      { cache: cacheFor(flags) },
    );
    report(io, flags, snapshot.id, summary, Date.now() - started);
    return summary.errors.length > 0 ? EXIT.FAILURE : EXIT.OK;
  } finally {
    stopSignals();
  }
}

/** `--dry-run`: the paths (leading `/`, escaped) as they come, then what the restore would cost. */
async function reportDryRun(io: Io, flags: Flags, id: string, run: (onEntry: (path: string) => void) => Promise<DryRunSummary>): Promise<void> {
  const paths: string[] = [];
  const s = await run(flags.json ? (p) => paths.push(`/${displayPath(p)}`) : (p) => io.out(`/${displayPath(p)}`));
  if (flags.json) {
    io.out(JSON.stringify({ snapshotId: id, dryRun: true, paths, ...s }, null, 2));
    return;
  }
  const special = [[s.special.fifos, "FIFO(s)"], [s.special.chardevs, "character device(s)"], [s.special.blockdevs, "block device(s)"]] as const;
  io.err(
    `dry run of snapshot ${id}: would restore ${s.files} files, ${s.dirs} directories, ${s.symlinks} symlinks, ` +
      special.filter(([n]) => n > 0).map(([n, what]) => `${n} ${what}, `).join("") +
      `${formatBytes(s.bytes)}, reading about ${formatBytes(s.bytesToRead)} from ${s.blobs} blob(s); nothing written`,
  );
}

/**
 * The summary: with --json all of it on stdout; otherwise on stderr each failed entry and each
 * warning (the first SHOWN of each unless --all-errors), then one line that counts what was
 * restored and what failed.
 */
function report(io: Io, flags: Flags, id: string, s: RestoreSummary, ms: number): void {
  if (flags.json) {
    // Paths as listings show them: JSON cannot carry bytes that are not UTF-8.
    const shown = (ps: readonly EntryProblem[]) => ps.map((p) => ({ ...p, path: displayPath(p.path), ...(p.target === undefined ? {} : { target: displayPath(p.target) }) }));
    io.out(JSON.stringify({ snapshotId: id, ...s, errors: shown(s.errors), warnings: shown(s.warnings), durationMs: ms }, null, 2));
    return;
  }
  const list = (kind: string, problems: readonly EntryProblem[]) => {
    const shown = flags.allErrors ? problems : problems.slice(0, SHOWN);
    for (const p of shown) io.err(`vaultik: ${kind}: ${displayPath(p.path)}: ${p.message}`);
    if (shown.length < problems.length) io.err(`vaultik: … and ${problems.length - shown.length} more (--all-errors lists every one)`);
  };
  list("error", s.errors);
  list("warning", s.warnings);
  const counted = (n: number, one: string, many: string) => (n === 0 ? [] : [`${n} ${n === 1 ? one : many}`]);
  const special = (c: { fifos: number; chardevs: number; blockdevs: number }) => [
    ...counted(c.fifos, "FIFO", "FIFOs"),
    ...counted(c.chardevs, "character device", "character devices"),
    ...counted(c.blockdevs, "block device", "block devices"),
  ];
  const lost = [...counted(s.failed.files, "file", "files"), ...counted(s.failed.dirs, "directory", "directories"), ...counted(s.failed.symlinks, "symlink", "symlinks"), ...special(s.failed)];
  io.err(
    `restored snapshot ${id}: ${s.files} files${s.skipped > 0 ? ` (${s.skipped} already restored and verified, skipped)` : ""}, ${s.dirs} directories, ${s.symlinks} symlinks, ` +
      special(s.special).map((c) => `${c}, `).join("") +
      `${formatBytes(s.bytes)} from ${s.blobs} blob(s) in ${formatDuration(ms)}` +
      (lost.length === 0 ? "" : `; ${lost.join(", ")} failed`) +
      (s.devicesSkipped === 0 ? "" : `; ${s.devicesSkipped} device node${s.devicesSkipped === 1 ? "" : "s"} skipped (needs root)`),
  );
}
