import { Daemon } from "../daemon/daemon.js";
import { backupStore, type BackupFlags } from "./backup.js";
import { EXIT } from "./exit.js";
import type { Io } from "./io.js";

/** `vaultik backup [CONFIG] --daemon`: runs until SIGTERM/SIGINT (exit 0); SIGHUP reloads. */
export async function runDaemon(configPath: string | undefined, _flags: BackupFlags, io: Io): Promise<number> {
  const daemon = new Daemon({ configPath, log: (line) => io.err(line), openStore: backupStore });
  await daemon.start(); // a bad config fails here, before anything runs
  const stop = () => daemon.stop();
  const reload = () => void daemon.reload();
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
  process.on("SIGHUP", reload);
  try {
    await daemon.run();
  } finally {
    process.off("SIGTERM", stop);
    process.off("SIGINT", stop);
    process.off("SIGHUP", reload);
  }
  return EXIT.OK;
}
