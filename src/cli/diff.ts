import type { Command } from "commander";
import { diffSnapshots, type Change, type ChangeKind, type Counts, type DiffSummary } from "../snapshot/diff.js";
import { withSnapshot } from "../snapshot/open.js";
import type { SnapshotReader } from "../snapshot/read.js";
import { formatBytes } from "../util/units.js";
import { cacheFor } from "./cache.js";
import { loadIdentities, repoFromArgs } from "./context.js";
import { interruptible, type Io } from "./io.js";
import { readOptions, trailingPaths, type ReadFlags } from "./options.js";
import { findInEither, shownPath } from "../snapshot/typed-path.js";

// `vaultik diff`: what changed between two snapshots, restic's way (+ - M T U), from their
// databases only.

/** restic's letters. */
const LETTER: Record<ChangeKind, string> = { added: "+", removed: "-", content: "M", type: "T", metadata: "U" };

export function registerDiff(program: Command, io: Io): void {
  readOptions(
    program
      .command("diff")
      .description("show what was added, removed and changed between two snapshots (reads snapshot databases only, no file data)")
      .argument("<args...>", "[BUCKET [PREFIX]] SNAPSHOT1 SNAPSHOT2 [PATH]"),
  )
    .addHelpText(
      "after",
      [
        "",
        "Each line is a letter and a path: + added, - removed, M content changed (a file's chunks or",
        "size, a symlink's target, a device's number), T type changed, U metadata only (mode, owner,",
        "mtime, xattrs). PATH (starting with /) limits the comparison to that part of the snapshots.",
        "",
        "Example:",
        "  vaultik diff my-bucket hosts/web 1a2b3c4d latest /etc",
      ].join("\n"),
    )
    .action(async (args: string[], flags: ReadFlags) => {
      const { rest: repoArgs, paths } = trailingPaths(args, 1, flags.config !== undefined ? 2 : 3);
      const { repo, rest } = await repoFromArgs(repoArgs, ["SNAPSHOT1", "SNAPSHOT2"], flags);
      const identities = loadIdentities(flags.identity);
      await interruptible(io, async (signal) => {
        const from = await repo.findSnapshot(rest[0]!, { host: flags.host, signal });
        const to = await repo.findSnapshot(rest[1]!, { host: flags.host, signal });
        const open = { cache: cacheFor(flags) };
        await withSnapshot(
          repo,
          from,
          identities,
          (a) => withSnapshot(repo, to, identities, async (b) => print(io, a, b, paths[0] === undefined ? undefined : findInEither(a, b, paths[0]), flags.json === true), signal, open),
          signal,
          open,
        );
      });
    });
}

/** Streams the changes as they come (a diff of millions of entries is never held), then the summary. */
function print(io: Io, a: SnapshotReader, b: SnapshotReader, prefix: string | undefined, json: boolean): void {
  const changes = diffSnapshots(a, b, prefix);
  const shown = prefix === undefined ? undefined : shownPath(prefix);
  if (json) {
    // One document, laid out as JSON.stringify(doc, null, 2) would, written a change at a time.
    const head: Record<string, string> = { from: a.meta.id, to: b.meta.id, ...(shown === undefined ? {} : { path: shown }) };
    io.stdout.write(`${JSON.stringify(head, null, 2).slice(0, -2)},\n  "changes": [`);
    let n = 0;
    let r = changes.next();
    for (; !r.done; r = changes.next()) io.stdout.write(`${n++ === 0 ? "\n" : ",\n"}    ${JSON.stringify(changeJson(r.value), null, 2).replace(/\n/g, "\n    ")}`);
    io.stdout.write(`${n === 0 ? "" : "\n  "}],\n  "summary": ${JSON.stringify(r.value, null, 2).replace(/\n/g, "\n  ")}\n}\n`);
    return;
  }
  io.out(`comparing snapshot ${a.meta.id} to ${b.meta.id}${shown === undefined ? "" : ` at ${shown}`}:\n`);
  let r = changes.next();
  for (; !r.done; r = changes.next()) io.out(`${LETTER[r.value.change].padEnd(5)}${shownPath(r.value.path)}`);
  io.out(["", ...summaryLines(r.value)].join("\n"));
}

function changeJson(c: Change): Record<string, unknown> {
  return { ...c, path: shownPath(c.path) };
}

function summaryLines(s: DiffSummary): string[] {
  const counts = (label: string, c: Counts) => `${label.padEnd(8)}${pad(c.new)} new, ${pad(c.removed)} removed, ${pad(c.changed)} changed`;
  const data = (label: string, d: DiffSummary["added"]) =>
    `${label.padEnd(9)}${formatBytes(d.raw)} in ${d.chunks} chunk${d.chunks === 1 ? "" : "s"} (${formatBytes(d.stored)} stored)`;
  return [counts("Files:", s.files), counts("Dirs:", s.dirs), counts("Others:", s.others), data("Added:", s.added), data("Removed:", s.removed)];
}

const pad = (n: number) => String(n).padStart(5);
