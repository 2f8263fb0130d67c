import type { StreamSource } from "./archiver.js";
import { childSource } from "./child-source.js";
import type { CommandSettings } from "./settings.js";

// A configured command (`pg_dump mydb | gzip`) whose standard output is stored in the snapshot
// as one file, run under `/bin/sh -c`. The command line may hold credentials, so every message
// names the command by its configured `name`, and its stderr is logged but never quoted in errors.

export interface CommandSourceOptions {
  /** The command's whole environment. Default: this process's environment. */
  env?: NodeJS.ProcessEnv;
  /** Receives each line the command writes to stderr, prefixed `[command <name>] `. */
  log: (line: string) => void;
}

export function commandSource(cmd: CommandSettings, options: CommandSourceOptions): StreamSource {
  return childSource({
    label: `command ${cmd.name}`,
    logPrefix: `[command ${cmd.name}] `,
    path: cmd.path,
    argv: ["/bin/sh", "-c", cmd.run],
    env: options.env,
    log: options.log,
  });
}
