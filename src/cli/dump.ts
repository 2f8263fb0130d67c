import type { Command } from "commander";
import type { X25519Identity } from "../crypto/keys.js";
import { UsageError } from "../errors.js";
import { displayPath } from "../model/path-bytes.js";
import type { Repository } from "../repo/repository.js";
import { dumpFile } from "../restore/dump.js";
import { TORN_FILE } from "../restore/report.js";
import { writeTar } from "../restore/tar.js";
import { withSnapshot } from "../snapshot/open.js";
import type { EntryRow, SnapshotReader } from "../snapshot/read.js";
import { cacheFor } from "./cache.js";
import { loadIdentities, repoFromArgs } from "./context.js";
import { EXIT } from "./exit.js";
import type { Io } from "./io.js";
import { readOptions, trailingPaths, type ReadFlags } from "./options.js";
import { findEntry } from "../snapshot/typed-path.js";
import { streamToStdout } from "./stdout-stream.js";

// `vaultik dump SNAPSHOT PATH`: a regular file's bytes, or a directory (`/`: the whole snapshot)
// as a tar archive, on stdout and nothing else there; messages on stderr.

interface Flags extends ReadFlags {
  archive?: string;
}

export const KIND: Record<EntryRow["type"], string> = {
  file: "file", dir: "directory", symlink: "symlink", fifo: "FIFO", chardev: "character device", blockdev: "block device",
};

const EXAMPLE = `
Examples:
  vaultik dump my-bucket hosts/db latest /var/backups/db.dump | pg_restore -d app
  vaultik dump -c vaultik.yml latest /etc > etc.tar          (a directory: a tar archive)
  vaultik dump -c vaultik.yml latest /etc | tar -x -C /tmp   (members are named etc/…, as restic names them)

A path with bytes that are not UTF-8 is typed as listings show it (\\xHH).`;

export function registerDump(program: Command, io: Io): void {
  readOptions(
    program
      .command("dump")
      .description("write a file of a snapshot to stdout, or a directory (/ for everything) as a tar archive, reading only the blob ranges it needs")
      .argument("<args...>", "[BUCKET [PREFIX]] SNAPSHOT PATH   (SNAPSHOT may be `latest` or a unique id prefix; PATH absolute)"),
    "not supported: stdout carries the file or the archive",
  )
    .option("--archive <format>", "tar: write a tar archive (the default for a directory; for a file, a one-member archive)")
    .addHelpText("after", EXAMPLE)
    .action(async (args: string[], flags: Flags) => {
      if (flags.json) throw new UsageError("--json", "dump writes the file or the archive itself to stdout; leave out --json");
      if (flags.archive !== undefined && flags.archive !== "tar") throw new UsageError("--archive", `unknown format ${JSON.stringify(flags.archive)}: tar is the one there is`);
      const split = trailingPaths(args, 1, flags.config ? 1 : 2);
      if (split.paths.length !== 1) throw new UsageError("PATH", "give the path in the snapshot, absolute (starting with /)");
      const { repo, rest } = await repoFromArgs(split.rest, ["SNAPSHOT"], flags);
      const identities = loadIdentities(flags.identity);
      const snapshot = await repo.findSnapshot(rest[0]!, { host: flags.host });
      io.exitCode = await streamToStdout(io, (signal) =>
        withSnapshot(repo, snapshot, identities, (reader) => dump(io, { repo, identities, reader, typed: split.paths[0]!, archive: flags.archive === "tar", signal }), signal, { cache: cacheFor(flags) }),
      );
    });
}

async function dump(io: Io, o: { repo: Repository; identities: readonly X25519Identity[]; reader: SnapshotReader; typed: string; archive: boolean; signal: AbortSignal }): Promise<number> {
  const entry = o.typed.replace(/\/+/g, "/") === "/" ? undefined : findEntry(o.reader, o.typed);
  if (entry?.type === "file" && !o.archive) {
    await dumpRegularFile(io, { repo: o.repo, identities: o.identities, snapshot: o.reader, entry, signal: o.signal });
    return EXIT.OK;
  }
  if (entry && entry.type !== "dir" && !o.archive) {
    throw new UsageError("PATH", `${o.typed} is a ${KIND[entry.type]}: add --archive tar to get it as a one-member tar archive`);
  }
  const skipped = await writeTar({
    repo: o.repo,
    identities: o.identities,
    snapshot: o.reader,
    prefix: entry?.path ?? "",
    out: io.stdout,
    signal: o.signal,
    skipped: (path, message) => io.err(`vaultik: error: /${displayPath(path)}: left out of the archive: ${message}`),
    warn: (path, message) => io.err(`vaultik: warning: /${displayPath(path)}: ${message}`),
  });
  return skipped > 0 ? EXIT.FAILURE : EXIT.OK;
}

/** A regular file's bytes to stdout, with a warning on stderr for a file that changed while it was backed up. */
export async function dumpRegularFile(
  io: Io,
  o: { repo: Repository; identities: readonly X25519Identity[]; snapshot: SnapshotReader; entry: EntryRow; signal: AbortSignal },
): Promise<void> {
  if (o.entry.status === "changed") io.err(`vaultik: warning: ${displayPath(o.entry.path)}: ${TORN_FILE}`);
  await dumpFile({ repo: o.repo, identities: o.identities, snapshot: o.snapshot, path: o.entry.path, out: io.stdout, signal: o.signal });
}
