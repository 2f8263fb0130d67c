import type { Command } from "commander";
import { formatBytes } from "../util/units.js";
import { hasIdentity, loadIdentities, repoFromArgs } from "./context.js";
import { interruptible, type Io } from "./io.js";
import { withSnapshot } from "../snapshot/open.js";

interface Flags {
  config?: string;
  json?: boolean;
  identity?: string;
  indexPrefix?: string;
  host?: string;
}

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
    .action(async (args: string[], flags: Flags) => {
      const { repo } = await repoFromArgs(args, 0, flags);
      const list = (await repo.listSnapshots()).filter((s) => flags.host === undefined || s.host === flags.host);
      const detailed = hasIdentity(flags.identity);
      const identities = detailed ? loadIdentities(flags.identity) : [];
      const rows: Record<string, unknown>[] = [];
      await interruptible(io, async (signal) => {
        for (const s of list) {
          const row: Record<string, unknown> = { id: s.id, host: s.host, time: s.time.toISOString(), stored_bytes: s.size };
          if (detailed) {
            const stats = await withSnapshot(repo, s, identities, async (r) => r.stats, signal);
            row["files"] = stats?.files;
            row["bytes"] = stats?.bytes;
            row["errors"] = stats?.errors;
          }
          rows.push(row);
        }
      });
      if (flags.json) {
        io.out(JSON.stringify(rows, null, 2));
        return;
      }
      if (rows.length === 0) {
        io.err(`no snapshots in ${repo.location}/${repo.indexPrefix}`);
        return;
      }
      const header = detailed ? ["ID", "HOST", "TIME (UTC)", "FILES", "SIZE"] : ["ID", "HOST", "TIME (UTC)"];
      const lines = rows.map((r) => {
        const base = [String(r["id"]), String(r["host"]), String(r["time"]).replace("T", " ").replace(/\.\d+Z$/, "")];
        return detailed ? [...base, String(r["files"] ?? "?"), formatBytes(Number(r["bytes"] ?? 0))] : base;
      });
      io.out(table([header, ...lines]));
    });
}

export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? "").length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join("  ")).join("\n");
}
