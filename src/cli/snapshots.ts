import type { Command } from "commander";
import { formatBytes } from "../util/units.js";
import { hasIdentity, loadIdentities, repoFromArgs } from "./context.js";
import { interruptible, type Io } from "./io.js";
import { withSnapshot } from "../snapshot/open.js";
import type { X25519Identity } from "../crypto/keys.js";
import { IntegrityError, NoIdentityError } from "../errors.js";
import type { Repository, SnapshotObject } from "../repo/repository.js";
import { EXIT } from "./exit.js";
import { cacheFor } from "./cache.js";
import type { ReadFlags } from "./options.js";
import type { SnapshotCache } from "../snapshot/cache.js";

type Flags = ReadFlags;

export function registerSnapshots(program: Command, io: Io): void {
  program
    .command("snapshots")
    .description("list snapshots (host and time need no key; with VAULTIK_PRIVATE_KEY also files and size)")
    .argument("[bucket_prefix...]", "BUCKET [PREFIX], unless --config is given")
    .option("-c, --config <file>", "take the repository from this config")
    .option("--identity <file>", "age identity file (default: VAULTIK_PRIVATE_KEY)")
    .option("--index-prefix <prefix>", "where snapshots live in the repository", undefined)
    .option("--host <host>", "only snapshots of this host")
    .option("--json", "print JSON")
    .option("--no-cache", "download snapshot databases again instead of using the local cache (VAULTIK_CACHE_DIR)")
    .action(async (args: string[], flags: Flags) => {
      const { repo } = await repoFromArgs(args, 0, flags);
      const list = (await repo.listSnapshots()).filter((s) => flags.host === undefined || s.host === flags.host);
      const detailed = hasIdentity(flags.identity);
      const identities = detailed ? loadIdentities(flags.identity) : [];
      const cache = detailed ? cacheFor(flags) : undefined;
      const rows: Record<string, unknown>[] = [];
      await interruptible(io, async (signal) => {
        for (const s of list) {
          const row: Record<string, unknown> = { id: s.id, host: s.host, time: s.time.toISOString(), stored_bytes: s.size };
          if (detailed) Object.assign(row, await details(repo, s, identities, signal, cache));
          rows.push(row);
        }
      });
      const unread = rows.filter((r) => r["status"] !== undefined && r["status"] !== "ok");
      io.exitCode = exitFor(unread.map((r) => r["status"] as Status));
      if (flags.json) {
        io.out(JSON.stringify(rows, null, 2));
        return;
      }
      if (rows.length === 0) {
        io.err(`no snapshots in ${repo.location}/${repo.indexPrefix}`);
        return;
      }
      const status = unread.length > 0 ? ["STATUS"] : [];
      const header = detailed ? ["ID", "HOST", "TIME (UTC)", "FILES", "SIZE", ...status] : ["ID", "HOST", "TIME (UTC)"];
      const lines = rows.map((r) => {
        const base = [String(r["id"]), String(r["host"]), String(r["time"]).replace("T", " ").replace(/\.\d+Z$/, "")];
        if (!detailed) return base;
        const size = r["bytes"] === undefined ? "?" : formatBytes(Number(r["bytes"]));
        return [...base, String(r["files"] ?? "?"), size, ...(status.length > 0 ? [String(r["status"]).replace("_", " ")] : [])];
      });
      io.out(table([header, ...lines]));
      for (const r of unread) io.err(`snapshot ${String(r["id"])} cannot be read: ${String(r["error"])}`);
      if (unread.length > 0) {
        io.err(`${unread.length} of ${rows.length} snapshot(s) cannot be read (\`vaultik check\` reports them; \`vaultik forget\` removes one that is lost)`);
      }
    });
}

/**
 * How one snapshot reads: `damaged` when its object fails an integrity check, `wrong_key` when
 * no identity given opens it (an older key, or a damaged wrapped key: see NoIdentityError).
 */
type Status = "ok" | "damaged" | "wrong_key";

/** Files, size and errors of a snapshot; one that cannot be read is marked, not fatal. */
async function details(
  repo: Repository,
  s: SnapshotObject,
  identities: readonly X25519Identity[],
  signal: AbortSignal,
  cache: SnapshotCache | undefined,
): Promise<Record<string, unknown>> {
  try {
    const stats = await withSnapshot(repo, s, identities, async (r) => r.stats, signal, { cache });
    return { status: "ok", files: stats?.files, bytes: stats?.bytes, errors: stats?.errors };
  } catch (err) {
    // Anything else (the store failing, a snapshot forgotten meanwhile) is not about this object.
    if (!(err instanceof IntegrityError)) throw err;
    return { status: err instanceof NoIdentityError ? "wrong_key" : "damaged", error: err.message };
  }
}

/**
 * The listing is printed whole either way; the exit code tells a script it is incomplete:
 * damage is a failure (1, as from `check`), only unopened ones mean another key is needed (12).
 */
function exitFor(statuses: readonly Status[]): number {
  if (statuses.includes("damaged")) return EXIT.FAILURE;
  if (statuses.includes("wrong_key")) return EXIT.WRONG_KEY;
  return EXIT.OK;
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n");
}
