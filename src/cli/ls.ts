import type { Command } from "commander";
import { displayPath } from "../model/path-bytes.js";
import { children, descendants, isImplied, listTarget, type Listed } from "../snapshot/listing.js";
import { withSnapshot } from "../snapshot/open.js";
import type { SnapshotReader } from "../snapshot/read.js";
import { cacheFor } from "./cache.js";
import { loadIdentities, repoFromArgs } from "./context.js";
import { ColumnWriter, deviceNumbers, isoNs, JsonArrayWriter, LineWriter, modeString, shortTime, shownPath } from "./entry-view.js";
import { interruptible, type Io } from "./io.js";
import { readOptions, trailingPaths, type ReadFlags } from "./options.js";

// `vaultik ls`: the entries of a snapshot under a path, read from the snapshot database alone.

interface Flags extends ReadFlags {
  long?: boolean;
  recursive?: boolean;
}

export function registerLs(program: Command, io: Io): void {
  readOptions(
    program
      .command("ls")
      .description("list the entries of a snapshot under PATH (default /): one path per line, -l for type, mode, owner, size and mtime")
      .argument("<args...>", "[BUCKET [PREFIX]] SNAPSHOT [PATH]   (SNAPSHOT: id, unique prefix or `latest`; PATH starts with /, a byte that is not UTF-8 as \\xHH)")
      .option("-l, --long", "long listing: type and mode, user, group, size, mtime (UTC), path, symlink target")
      .option("-R, --recursive", "everything below PATH, not only its direct entries"),
    "print a JSON array of entries (every field, whatever -l says)",
  )
    .addHelpText(
      "after",
      `
Paths are printed with a leading / and can be pasted into \`fetch\`. Directories above the
backed-up source directories are shown though the snapshot records no metadata for them
("implied": -l prints ? for what is unknown). Entries are in byte order of their paths.

Examples:
  vaultik ls my-bucket latest
  vaultik ls /srv/backups 3f2a /home/me -l
  vaultik ls -c vaultik.yml latest /etc -R --json`,
    )
    .action(async (args: string[], flags: Flags) => {
      const { rest, paths } = trailingPaths(args, 1, flags.config === undefined ? 2 : 1);
      const { repo, rest: [ref] } = await repoFromArgs(rest, ["SNAPSHOT"], flags);
      const identities = loadIdentities(flags.identity);
      await interruptible(io, async (signal) => {
        const snapshot = await repo.findSnapshot(ref!, { host: flags.host, signal });
        await withSnapshot(repo, snapshot, identities, async (reader) => print(io, flags, reader, paths[0] ?? "/", signal), signal, { cache: cacheFor(flags) });
      });
    });
}

async function print(io: Io, flags: Flags, reader: SnapshotReader, typed: string, signal: AbortSignal): Promise<void> {
  const at = listTarget(reader, typed);
  const listed: Iterable<Listed> = at.type !== "dir" ? [at] : flags.recursive ? descendants(reader, at.path) : children(reader, at.path);
  const lines = new LineWriter((text) => io.out(text));
  let n = 0;
  const checkAbort = () => {
    // Every few thousand rows: a listing of millions must stop on Ctrl-C.
    if (++n % 4096 === 0) signal.throwIfAborted();
  };
  if (flags.json) {
    const json = new JsonArrayWriter(lines);
    for (const e of listed) {
      checkAbort();
      json.add(entryJson(reader, e));
    }
    json.end();
    return;
  }
  const columns = flags.long ? new ColumnWriter(lines, new Set([3])) : undefined;
  for (const e of listed) {
    checkAbort();
    if (columns) columns.row(longRow(e));
    else lines.line(shownPath(e.path));
  }
  columns?.flush();
  lines.flush();
}

/** mode, user, group, size (or a device's numbers), mtime, path [-> target]. */
function longRow(e: Listed): string[] {
  if (isImplied(e)) return ["d?????????", "?", "?", "?", "?", shownPath(e.path)];
  const size = (e.type === "chardev" || e.type === "blockdev") && e.rdev !== null ? deviceNumbers(e.rdev) : String(e.size);
  const target = e.type === "symlink" && e.linkTarget !== null ? ` -> ${displayPath(e.linkTarget)}` : "";
  return [modeString(e.type, e.mode), e.userName ?? String(e.uid), e.groupName ?? String(e.gid), size, shortTime(e.mtimeNs), shownPath(e.path) + target];
}

/**
 * One entry as JSON: every field always there (null when unknown), so scripts need no probing.
 * A hard link's `link_id` is the same for every name of the inode; `links_to` is the first name
 * (the one restore writes content to), null on that one itself.
 */
function entryJson(reader: SnapshotReader, e: Listed): Record<string, unknown> {
  if (isImplied(e)) {
    return {
      path: shownPath(e.path), type: "dir", implied: true, mode: null, mode_string: null, uid: null, gid: null, user: null, group: null,
      size: null, mtime: null, link_target: null, rdev: null, link_id: null, links_to: null, xattrs: [], status: null,
    };
  }
  const leader = e.linkId !== null && e.linkId !== e.id ? reader.pathOf(e.linkId) : undefined;
  return {
    path: shownPath(e.path),
    type: e.type,
    implied: false,
    mode: e.mode,
    mode_string: modeString(e.type, e.mode),
    uid: e.uid,
    gid: e.gid,
    user: e.userName,
    group: e.groupName,
    size: e.size,
    mtime: isoNs(e.mtimeNs),
    link_target: e.linkTarget === null ? null : displayPath(e.linkTarget),
    rdev: e.rdev,
    link_id: e.linkId,
    links_to: leader === undefined ? null : shownPath(leader),
    xattrs: reader.xattrs(e.id).map((x) => displayPath(x.name)),
    status: e.status,
  };
}
