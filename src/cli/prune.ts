import { Option, type Command } from "commander";
import { check } from "../check/check.js";
import { checkRecord, writeCheckRecord, type CheckRecord } from "../check/last-check.js";
import { cacheRoot } from "./cache.js";
import { appRetentions } from "../config/index.js";
import { parseDuration } from "../config/units.js";
import { ConfigError, errorMessage, UnreadableSnapshotsError } from "../errors.js";
import type { RetentionPolicy } from "../prune/policy.js";
import { prune, type PruneReport } from "../prune/prune.js";
import { describePolicy, isEmptyPolicy } from "../prune/retention.js";
import { formatBytes, formatDuration } from "../util/units.js";
import { loadIdentities, repoFromArgs } from "./context.js";
import { EXIT } from "./exit.js";
import { interruptible, type Io } from "./io.js";
import { displayPath } from "../model/path-bytes.js";

interface RepoFlags {
  config?: string;
  identity?: string;
  indexPrefix?: string;
  json?: boolean;
}

interface PruneFlags extends RepoFlags {
  keepLast?: string;
  keepHourly?: string;
  keepDaily?: string;
  keepWeekly?: string;
  keepMonthly?: string;
  keepYearly?: string;
  keepWithin?: string;
  dryRun?: boolean;
  grace: string;
  safetyWindow: string;
  force?: boolean;
  now?: string;
}

function repoOptions(cmd: Command): Command {
  return cmd
    .option("-c, --config <file>", "take the repository (and retention) from this config instead of BUCKET PREFIX")
    .option("--identity <file>", "age identity file (default: VAULTIK_PRIVATE_KEY or VAULTIK_PRIVATE_KEY_FILE)")
    .option("--index-prefix <prefix>", "where snapshots live in the repository")
    .option("--json", "print JSON");
}

export function registerPrune(program: Command, io: Io): void {
  repoOptions(
    program
      .command("prune")
      .description("apply retention, forget what it drops, and delete blobs no kept snapshot references (needs the private key)")
      .argument("[bucket_prefix...]", "BUCKET PREFIX, unless --config is given")
      .option("--keep-last <n>", "keep the n newest snapshots (per host)")
      .option("--keep-hourly <n>", "keep the newest snapshot of each of the last n hours that have one")
      .option("--keep-daily <n>", "… of each of the last n days (UTC)")
      .option("--keep-weekly <n>", "… of each of the last n ISO weeks")
      .option("--keep-monthly <n>", "… of each of the last n months")
      .option("--keep-yearly <n>", "… of each of the last n years")
      .option("--keep-within <duration>", "keep every snapshot younger than this (e.g. 30d), measured from now")
      .option("--dry-run", "print what would be forgotten and deleted; change nothing")
      .option("--grace <duration>", "never delete blobs younger than this", "24h")
      .option("--safety-window <duration>", "time between announcing blobs and deleting them", "1h")
      .option("--force", "go on even though no snapshot was found (deletes every blob)")
      // Tests move prune's clock with this; the store's own times (object mtimes) stay real.
      .addOption(new Option("--now <time>", "act as if the clock showed this time (ISO 8601)").hideHelp()),
  ).action(async (args: string[], flags: PruneFlags) => {
    const { repo, config } = await repoFromArgs(args, 0, flags);
    const cli = policyFromFlags(flags);
    const policy = isEmptyPolicy(cli) && config ? config.retention : cli;
    // Flags override every host; the config's apps each keep their own retention (by host).
    const hostPolicies = isEmptyPolicy(cli) && config ? appRetentions(config) : undefined;
    const identities = loadIdentities(flags.identity);
    const lines: string[] = [];
    const report = await interruptible(io, (signal) => prune({
      repo,
      signal,
      identities,
      policy,
      hostPolicies,
      dryRun: flags.dryRun,
      graceMs: parseDuration(flags.grace, "--grace"),
      windowMs: parseDuration(flags.safetyWindow, "--safety-window"),
      force: flags.force,
      now: flags.now === undefined ? undefined : clockFrom(flags.now),
      log: (l) => (flags.json ? lines.push(l) : io.err(l)),
    }).catch((err: unknown) => {
      if (!(err instanceof UnreadableSnapshotsError)) throw err;
      const damaged = err.snapshots.filter((s) => !s.wrongKey).map((s) => s.id);
      const locked = err.snapshots.filter((s) => s.wrongKey).map((s) => s.id);
      throw new UnreadableSnapshotsError(
        err.snapshots,
        "prune needs every snapshot it keeps, so nothing was forgotten or deleted. A damaged snapshot lost for good is removed with: " +
          forgetCommand(args, flags, damaged) +
          (locked.length > 0 ? `. ${locked.join(", ")}: give the key that opens them too (VAULTIK_PRIVATE_KEY may hold several lines)` : ""),
      );
    }));
    if (flags.json) io.out(JSON.stringify(toJson(report, policy), null, 2));
    else io.out(describe(report, policy));
  });

  repoOptions(
    program
      .command("forget")
      .description("remove snapshots by id (their blobs go at the next prune)")
      .argument("<args...>", "[BUCKET PREFIX] SNAPSHOT_ID…"),
  ).action(async (args: string[], flags: RepoFlags) => {
    // Everything after BUCKET PREFIX (or everything, with --config) is a snapshot id.
    const ids = flags.config ? args : args.slice(2);
    if (ids.length === 0) throw new ConfigError("SNAPSHOT_ID", "name at least one snapshot to forget");
    const { repo } = await repoFromArgs(args, ids.length, flags);
    const forgotten: string[] = [];
    for (const ref of ids) {
      const s = await repo.findSnapshot(ref);
      await repo.deleteSnapshot(s);
      forgotten.push(s.id);
      if (!flags.json) io.out(`forgot snapshot ${s.id}`);
    }
    if (flags.json) io.out(JSON.stringify({ forgotten }, null, 2));
  });

  repoOptions(
    program
      .command("check")
      .description("verify that every blob the snapshots need exists (and, with --read-data, is intact)")
      .argument("[bucket_prefix...]", "BUCKET PREFIX, unless --config is given")
      .option("--read-data", "download and verify every referenced blob and chunk")
      .option("--read-data-subset <percent>", "download and verify a random part of them, e.g. 10%"),
  ).action(async (args: string[], flags: RepoFlags & { readData?: boolean; readDataSubset?: string }) => {
    const { repo } = await repoFromArgs(args, 0, flags);
    const identities = loadIdentities(flags.identity);
    const fraction = flags.readData ? 1 : flags.readDataSubset !== undefined ? parsePercent(flags.readDataSubset) : 0;
    const report = await interruptible(io, (signal) => check({ repo, identities, readData: fraction, signal }));
    const bad = report.damage.length > 0 || report.unreadable.length > 0;
    recordCheck(io, repo.location, checkRecord(report, fraction, new Date()));
    if (flags.json) io.out(JSON.stringify(report, null, 2));
    else {
      io.out(
        `checked ${report.snapshots} snapshot(s), ${report.blobsReferenced} referenced blob(s)` +
          (fraction > 0 ? `, read and verified ${report.blobsRead} (${formatBytes(report.bytesRead)})` : " (listing only)"),
      );
      for (const u of report.unreadable) io.out(`snapshot ${u.snapshot}: cannot read its database: ${u.problem}`);
      for (const d of report.damage) {
        io.out(`snapshot ${d.snapshot} is damaged: blob ${d.blob}: ${d.problem}`);
        if (d.damagedChunks !== undefined) io.out(`  ${d.damagedChunks} chunk(s) of it fail when read alone; only the files using them are affected`);
        for (const f of d.files) io.out(`  affects ${displayPath(f)}`);
        if (d.moreFiles > 0) io.out(`  … and ${d.moreFiles} more file(s)`);
      }
      io.out(bad ? "repository has errors" : "no errors found");
    }
    io.exitCode = bad ? EXIT.FAILURE : EXIT.OK;
  });
}

/**
 * Keeps the result for `vaultik serve` on this machine (not in the bucket, which the recovery
 * machine only reads); a cache that cannot be written loses the record, not the check.
 */
function recordCheck(io: Io, location: string, record: CheckRecord): void {
  try {
    writeCheckRecord(cacheRoot(), location, record);
  } catch (err) {
    io.err(`vaultik: warning: cannot record the check result in the cache directory: ${errorMessage(err)}`);
  }
}

/** The `vaultik forget` command line for `ids` in the repository this command was given. */
function forgetCommand(args: readonly string[], flags: RepoFlags, ids: readonly string[]): string {
  // forget takes BUCKET and PREFIX both (its other arguments are ids), so an omitted one is ''.
  const repo = flags.config !== undefined ? ["--config", flags.config] : [args[0] ?? "", args[1] ?? ""];
  const prefix = flags.indexPrefix !== undefined ? ["--index-prefix", flags.indexPrefix] : [];
  return ["vaultik", "forget", ...repo, ...prefix, ...ids].map(shellQuote).join(" ");
}

function shellQuote(arg: string): string {
  return /^[\w@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replace(/'/g, `'\\''`)}'`;
}

function count(value: string | undefined, flag: string): number | undefined {
  if (value === undefined) return undefined;
  const n = Number(value);
  if (!Number.isInteger(n) || n < 0) throw new ConfigError(flag, `must be a non-negative integer, got ${JSON.stringify(value)}`);
  return n;
}

function policyFromFlags(f: PruneFlags): RetentionPolicy {
  const p: RetentionPolicy = {
    keepLast: count(f.keepLast, "--keep-last"),
    keepHourly: count(f.keepHourly, "--keep-hourly"),
    keepDaily: count(f.keepDaily, "--keep-daily"),
    keepWeekly: count(f.keepWeekly, "--keep-weekly"),
    keepMonthly: count(f.keepMonthly, "--keep-monthly"),
    keepYearly: count(f.keepYearly, "--keep-yearly"),
    keepWithin: f.keepWithin === undefined ? undefined : parseDuration(f.keepWithin, "--keep-within"),
  };
  for (const k of Object.keys(p) as (keyof RetentionPolicy)[]) if (p[k] === undefined) delete p[k];
  return p;
}

/** A clock that starts at `text` and runs at the real clock's pace. */
function clockFrom(text: string): () => number {
  const start = Date.parse(text);
  if (Number.isNaN(start)) throw new ConfigError("--now", `must be a time such as 2026-11-27T12:00:00Z, got ${JSON.stringify(text)}`);
  const offset = start - Date.now();
  return () => Date.now() + offset;
}

function parsePercent(text: string): number {
  const m = /^(\d+(?:\.\d+)?)%?$/.exec(text.trim());
  const n = m ? Number(m[1]) : NaN;
  if (!(n > 0 && n <= 100)) throw new ConfigError("--read-data-subset", `must be a percentage from 0 to 100, e.g. 10%, got ${JSON.stringify(text)}`);
  return n / 100;
}

function describe(r: PruneReport, policy: RetentionPolicy): string {
  const lines = [`policy: ${describePolicy(policy)}${r.dryRun ? "  (dry run: nothing changed)" : ""}`];
  for (const [host, rules] of r.retention.byRule) {
    for (const [rule, ids] of rules) lines.push(`  ${host}: keep-${rule} keeps ${ids.length}: ${ids.join(", ") || "-"}`);
  }
  const verb = r.dryRun ? "would forget" : "forgot";
  lines.push(`${verb} ${r.snapshotsRemoved.length} snapshot(s)${r.snapshotsRemoved.length ? `: ${r.snapshotsRemoved.join(", ")}` : ""}`);
  lines.push(`kept ${r.retention.keep.length} snapshot(s)`);
  if (r.dryRun) {
    lines.push(`would delete ${r.blobsDeleted + r.blobsAnnounced} unreferenced blob(s) (${formatBytes(r.bytesAnnounced)} announced now, older notices included)`);
  } else {
    lines.push(`deleted ${r.blobsDeleted} blob(s), freed ${formatBytes(r.bytesDeleted)}`);
    if (r.blobsAnnounced > 0) lines.push(`announced ${r.blobsAnnounced} blob(s) (${formatBytes(r.bytesAnnounced)}) for deletion`);
  }
  lines.push(...whenFreed(r));
  return lines.join("\n");
}

/**
 * Why unreferenced blobs are still there and when a prune will free them: a prune right after a
 * backup frees nothing (grace period, then a notice, then deletion after the safety window).
 */
function whenFreed(r: PruneReport): string[] {
  const lines: string[] = [];
  const window = formatDuration(r.windowMs);
  if (r.youngUntil !== undefined) {
    lines.push(
      `${r.blobsYoung} unreferenced blob(s) (${formatBytes(r.bytesYoung)}) are within the grace period (${formatDuration(r.graceMs)}): ` +
        `a prune from ${shownTime(r.youngUntil)} announces them, and one at least the safety window (${window}) later deletes them`,
    );
  }
  if (r.youngHeldBy.length > 0) {
    lines.push(`unreferenced blobs uploaded since backup ${r.youngHeldBy.join(", ")} started stay until it has ended`);
  }
  for (const d of r.deferred) {
    if (d.deletableAfter !== undefined) lines.push(`${d.blobs} blob(s) will be deletable after ${shownTime(d.deletableAfter)}; run prune again then`);
    else if (d.waitingFor) lines.push(`${d.blobs} blob(s) wait for backup ${d.waitingFor.join(", ")}, which started before they were announced; run prune again after it ends`);
    else lines.push(`waiting: ${d.blobs} blob(s) in ${d.notice}: ${d.reason}`);
  }
  return lines;
}

/** Whole seconds, rounded up: "deletable after" must hold at the time shown. */
function shownTime(ms: number): string {
  return new Date(Math.ceil(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

function toJson(r: PruneReport, policy: RetentionPolicy): Record<string, unknown> {
  const byRule: Record<string, Record<string, string[]>> = {};
  for (const [host, rules] of r.retention.byRule) byRule[host] = Object.fromEntries(rules);
  return {
    policy: describePolicy(policy),
    dryRun: r.dryRun,
    kept: r.retention.keep.map((s) => ({ id: s.id, reasons: r.retention.reasons.get(s.id) ?? [] })),
    byRule,
    snapshotsRemoved: r.snapshotsRemoved,
    blobsDeleted: r.blobsDeleted,
    bytesDeleted: r.bytesDeleted,
    blobsAnnounced: r.blobsAnnounced,
    bytesAnnounced: r.bytesAnnounced,
    blobsYoung: r.blobsYoung,
    bytesYoung: r.bytesYoung,
    youngUntil: r.youngUntil === undefined ? undefined : new Date(r.youngUntil).toISOString(),
    youngHeldBy: r.youngHeldBy,
    deferred: r.deferred.map((d) => ({ ...d, deletableAfter: d.deletableAfter === undefined ? undefined : new Date(d.deletableAfter).toISOString() })),
  };
}
