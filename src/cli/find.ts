import type { Command } from "commander";
import { parseDuration, parseSize } from "../config/units.js";
import { ConfigError, IntegrityError, NoIdentityError, UsageError } from "../errors.js";
import { parseDisplayPath } from "../model/path-bytes.js";
import type { Repository, SnapshotObject } from "../repo/repository.js";
import { withSnapshot } from "../snapshot/open.js";
import type { EntryRow, SearchFilter } from "../snapshot/read.js";
import { cacheFor } from "./cache.js";
import { asUsage, loadIdentities, repoFromArgs } from "./context.js";
import { ColumnWriter, isoNs, JsonArrayWriter, LineWriter, modeString, nsOf, shortTime, shownPath } from "./entry-view.js";
import { EXIT } from "./exit.js";
import { compilePatterns } from "../snapshot/find-pattern.js";
import { interruptible, type Io } from "./io.js";
import { readOptions, type ReadFlags } from "./options.js";
import { snapshotPath } from "../snapshot/typed-path.js";

// `vaultik find`: which snapshots hold paths matching globs, newest snapshot first, read from
// the snapshot databases alone.

interface Flags extends ReadFlags {
  prefix?: string;
  snapshot?: string[];
  path?: string;
  newer?: string;
  older?: string;
  larger?: string;
  smaller?: string;
  ignoreCase?: boolean;
}

export function registerFind(program: Command, io: Io): void {
  const cmd = readOptions(
    program
      .command("find")
      .description("find entries matching glob PATTERNs in every snapshot (or the selected ones), newest snapshot first")
      .argument("<args...>", "[BUCKET] PATTERN...   (BUCKET: S3 bucket or local directory; leave it out with --config)")
      .option("--prefix <prefix>", "PREFIX of the repository in BUCKET (PATTERNs take the place it has in other commands)")
      .option("--snapshot <id>", "only this snapshot (id, unique prefix or `latest`); repeatable", (v: string, all: string[] = []) => [...all, v])
      .option("--path <path>", "only entries at or below this snapshot path (as listings print it: \\xHH for a byte that is not UTF-8)")
      .option("--newer <time>", "only entries modified after TIME: 2026-11-01, 2026-11-01T12:00:00Z (no zone: UTC), or an age such as 2d, 3h, 1w")
      .option("--older <time>", "only entries modified before TIME (as --newer)")
      .option("--larger <size>", "only entries larger than SIZE (e.g. 10MiB, 500KB, 1024)")
      .option("--smaller <size>", "only entries smaller than SIZE")
      .option("-i, --ignore-case", "match PATTERNs without regard to case"),
    "print a JSON array: one object per snapshot with matches",
  ).addHelpText(
    "after",
    `
A PATTERN without / matches an entry's name (like find -name), one with / the whole path
(leading / optional); *, ?, [...], {a,b} and ** as in shells (picomatch). Quote PATTERNs so the
shell does not expand them. Several PATTERNs: an entry matching any. Nothing found is not an
error (exit 0, "no matches" on stderr), as with restic.

Examples:
  vaultik find my-bucket '*.pdf' --host laptop
  vaultik find /srv/backups --prefix office/ 'report*.odt' --newer 30d
  vaultik find -c vaultik.yml '/home/*/.ssh/**' --json`,
  );
  // readOptions describes --host for `latest`; here it selects snapshots.
  const host = cmd.options.find((o) => o.long === "--host");
  if (host) host.description = "only snapshots of this host";
  cmd.action(async (args: string[], flags: Flags) => {
    if (flags.config !== undefined && flags.prefix !== undefined) throw new UsageError("--prefix", "the repository comes from --config; leave out --prefix");
    const patterns = flags.config === undefined ? args.slice(1) : args;
    if (patterns.length === 0) throw new UsageError("PATTERN", `missing; expected ${flags.config === undefined ? "BUCKET" : "--config FILE"} PATTERN...`);
    const repoArgs = flags.config === undefined ? [args[0]!, flags.prefix ?? "", ...patterns] : patterns;
    const { repo } = await repoFromArgs(repoArgs, patterns.map(() => "PATTERN"), flags);
    const filter = searchFilter(flags);
    const compiled = compilePatterns(patterns, flags.ignoreCase === true);
    filter.names = compiled.names;
    const identities = loadIdentities(flags.identity);
    const lines = new LineWriter((text) => io.out(text));
    const json = flags.json ? new JsonArrayWriter(lines) : undefined;
    let found = 0;
    let failure: number = EXIT.OK;
    const open = { cache: cacheFor(flags) };
    await interruptible(io, async (signal) => {
      for (const s of await selectSnapshots(repo, flags, signal)) {
        let matches: EntryRow[];
        try {
          matches = await withSnapshot(repo, s, identities, async (reader) => [...reader.search(filter)].filter((e) => compiled.test(e.path)), signal, open);
        } catch (err) {
          // One unreadable snapshot does not hide the others' matches; the exit code tells.
          if (!(err instanceof IntegrityError)) throw err;
          io.err(`vaultik: warning: snapshot ${s.id} cannot be read: ${err.message}`);
          failure = err instanceof NoIdentityError && failure !== EXIT.FAILURE ? EXIT.WRONG_KEY : EXIT.FAILURE;
          continue;
        }
        if (matches.length === 0) continue;
        found += matches.length;
        if (json) json.add(groupJson(s, matches));
        else printGroup(lines, s, matches, found === matches.length);
        lines.flush();
      }
    });
    json?.end();
    lines.flush();
    if (found === 0) io.err("no matches");
    io.exitCode = failure;
  });
}

/** The snapshots to search, newest first: --snapshot ones (each once), else all (of --host). */
async function selectSnapshots(repo: Repository, flags: Flags, signal: AbortSignal): Promise<SnapshotObject[]> {
  let list: SnapshotObject[];
  if (flags.snapshot !== undefined) {
    const byId = new Map<string, SnapshotObject>();
    for (const ref of flags.snapshot) {
      const s = await repo.findSnapshot(ref, { host: flags.host, signal });
      byId.set(s.id, s);
    }
    list = [...byId.values()];
  } else {
    list = (await repo.listSnapshots({ signal })).filter((s) => flags.host === undefined || s.host === flags.host);
  }
  return list.sort((a, b) => b.time.getTime() - a.time.getTime() || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
}

function searchFilter(flags: Flags): SearchFilter {
  const now = Date.now();
  const filter: SearchFilter = {};
  // As listings print it: a byte that is not UTF-8 as \xHH, a backslash as \\.
  if (flags.path !== undefined) filter.under = parseDisplayPath(snapshotPath(flags.path));
  if (flags.newer !== undefined) filter.newerNs = nsOf(parseTime(flags.newer, "--newer", now));
  if (flags.older !== undefined) filter.olderNs = nsOf(parseTime(flags.older, "--older", now));
  if (flags.larger !== undefined) filter.largerThan = asUsage(() => parseSize(flags.larger!, "--larger"));
  if (flags.smaller !== undefined) filter.smallerThan = asUsage(() => parseSize(flags.smaller!, "--smaller"));
  return filter;
}

/**
 * A point in time: an ISO date or date and time (UTC unless it names a zone), or an age such as
 * `2d` or `1h30m` before now.
 */
export function parseTime(text: string, option: string, now: number): Date {
  const t = text.trim();
  if (/^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/i.test(t)) {
    const zoned = /(Z|[+-]\d{2}:?\d{2})$/i.test(t) || t.length === 10 ? t : `${t}Z`;
    const date = new Date(zoned.replace(" ", "T"));
    if (!Number.isNaN(date.getTime())) return date;
  } else if (/^\d/.test(t)) {
    try {
      return new Date(now - parseDuration(t, option));
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
    }
  }
  throw new UsageError(option, `expected a date (2026-11-01), a date and time (2026-11-01T12:00:00Z; no zone: UTC) or an age (2d, 3h, 1w), got ${JSON.stringify(text)}`);
}

function groupJson(s: SnapshotObject, matches: readonly EntryRow[]): Record<string, unknown> {
  return {
    snapshot: s.id,
    host: s.host,
    time: s.time.toISOString(),
    matches: matches.map((e) => ({ path: shownPath(e.path), type: e.type, size: e.size, mtime: isoNs(e.mtimeNs) })),
  };
}

/** A header line per snapshot, then its matches: mode, size, mtime (UTC), path; groups apart by a blank line. */
function printGroup(lines: LineWriter, s: SnapshotObject, matches: readonly EntryRow[], first: boolean): void {
  if (!first) lines.line("");
  lines.line(`snapshot ${s.id} (host ${s.host}, ${s.time.toISOString().slice(0, 19).replace("T", " ")} UTC)`);
  const columns = new ColumnWriter(lines, new Set([1]), Number.MAX_SAFE_INTEGER);
  for (const e of matches) columns.row([`  ${modeString(e.type, e.mode)}`, String(e.size), shortTime(e.mtimeNs), shownPath(e.path)]);
  columns.flush();
}
