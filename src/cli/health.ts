import type { Command } from "commander";
import { loadConfig } from "../config/index.js";
import { daemonHealth, readStateFile, stateFilePath } from "../daemon/state-file.js";
import { VERSION } from "../version.js";
import { EXIT } from "./exit.js";
import type { Io } from "./io.js";

export function registerHealth(program: Command, io: Io): void {
  program
    .command("health-check")
    .description("exit 0 when the daemon of CONFIG is running and last backed up successfully and recently (for Docker HEALTHCHECK)")
    // Optional as for `backup`: a container configured by VAULTIK_* variables checks itself by them.
    .argument("[config]", "YAML config file (default: none, every key from its VAULTIK_* variable)")
    .option("--json", "print the daemon's state as JSON")
    .action(async (configPath: string | undefined, flags: { json?: boolean }) => {
      const config = await loadConfig(configPath);
      const file = readStateFile(config.indexPath);
      const staleAfter = config.alerts?.staleAfter ?? file?.staleAfterMs ?? 26 * 3600_000;
      const verdict = file
        ? daemonHealth(file, Date.now(), staleAfter)
        : { healthy: false, reason: `no daemon state at ${stateFilePath(config.indexPath)} (has the daemon run?)` };
      if (flags.json) io.out(JSON.stringify({ ...verdict, state: file?.state }, null, 2));
      else io.out(`${verdict.healthy ? "healthy" : "unhealthy"}: ${verdict.reason}`);
      io.exitCode = verdict.healthy ? EXIT.OK : EXIT.FAILURE;
    });

  program
    .command("version")
    .description("print the version")
    .option("--json", "print JSON with the versions of the runtime and the format")
    .action(async (flags: { json?: boolean }) => {
      if (!flags.json) {
        io.out(`vaultik ${VERSION}`);
        return;
      }
      const { SNAPSHOT_FORMAT } = await import("../snapshot/schema.js");
      io.out(JSON.stringify({ vaultik: VERSION, node: process.versions.node, sqlite: await sqliteVersion(), snapshotFormat: SNAPSHOT_FORMAT, platform: `${process.platform}-${process.arch}` }, null, 2));
    });
}

async function sqliteVersion(): Promise<string> {
  const { default: Database } = await import("better-sqlite3");
  const db = new Database(":memory:");
  try {
    return db.prepare("SELECT sqlite_version()").pluck().get() as string;
  } finally {
    db.close();
  }
}
