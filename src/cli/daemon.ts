import { ConfigError } from "../errors.js";
import type { BackupFlags } from "./backup.js";
import type { Io } from "./io.js";

export async function runDaemon(_config: string, _flags: BackupFlags, _io: Io): Promise<number> {
  throw new ConfigError("--daemon", "daemon mode is not built yet");
}
