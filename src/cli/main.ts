import { Command, CommanderError } from "commander";
import { VERSION } from "../version.js";
import { registerBackup } from "./backup.js";
import { registerCatalogSeed } from "./catalog-seed.js";
import { registerHealth } from "./health.js";
import { registerPrune } from "./prune.js";
import { exitCodeFor, messageFor, EXIT } from "./exit.js";
import { addHelpSections } from "./help.js";
import { processIo, type Io } from "./io.js";
import { registerKeygen } from "./keygen.js";
import { registerRestore } from "./restore.js";
import { registerDiff } from "./diff.js";
import { registerStats } from "./stats.js";
import { registerLs } from "./ls.js";
import { registerFind } from "./find.js";
import { registerDump } from "./dump.js";
import { registerSnapshots } from "./snapshots.js";
import { registerServe } from "./serve.js";

// Builds the command tree and turns every failure into one message and one exit code.

export function buildProgram(io: Io): Command {
  const program = new Command("vaultik")
    .description("zero-trust, deduplicating, encrypted backups to S3-compatible storage")
    .version(VERSION, "-V, --version")
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: (s) => io.stderr.write(s) })
    .showHelpAfterError("(run with --help for usage)");
  registerKeygen(program, io);
  // The daemon (watcher, scheduler, status server) loads only when asked for: start-up is paid
  // by every run, and an unchanged cron backup is mostly start-up.
  registerBackup(program, io, async (config, flags) => (await import("./daemon.js")).runDaemon(config, flags, io));
  registerSnapshots(program, io);
  registerRestore(program, io);
  registerLs(program, io);
  registerFind(program, io);
  registerDiff(program, io);
  registerStats(program, io);
  registerDump(program, io);
  registerPrune(program, io);
  registerHealth(program, io);
  registerServe(program, io);
  registerCatalogSeed(program, io);
  addHelpSections(program);
  return program;
}

export async function main(argv: readonly string[], io: Io = processIo()): Promise<number> {
  const program = buildProgram(io);
  const cron = argv.includes("--cron");
  try {
    await program.parseAsync([...argv]);
    return io.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Commander has already printed its message (or the help text).
      return err.exitCode === 0 || err.code === "commander.helpDisplayed" || err.code === "commander.version" ? EXIT.OK : EXIT.USAGE;
    }
    const code = exitCodeFor(err);
    io.err(`vaultik: ${cron ? "" : "error: "}${messageFor(err)}`);
    if (process.env["VAULTIK_DEBUG"] && err instanceof Error && err.stack) io.err(err.stack);
    return code;
  }
}
