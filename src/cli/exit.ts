import { CommanderError } from "commander";
import { ConfigError, errorMessage, VaultikError } from "../errors.js";

// The one place where failures become exit codes and messages. Codes follow restic's where the
// meaning is the same, so scripts written for restic read ours the same way.

export const EXIT = {
  OK: 0,
  FAILURE: 1,
  USAGE: 2,
  /** The snapshot was written, but some files could not be read. */
  PARTIAL: 3,
  NOT_FOUND: 10,
  LOCKED: 11,
  WRONG_KEY: 12,
  INTERRUPTED: 130,
} as const;

export function exitCodeFor(err: unknown): number {
  if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.OK : EXIT.USAGE;
  if (err instanceof VaultikError) {
    switch (err.code) {
      case "USAGE":
      case "CONFIG":
        return EXIT.USAGE;
      case "NOT_FOUND":
        return EXIT.NOT_FOUND;
      case "LOCKED":
        return EXIT.LOCKED;
      case "NO_IDENTITY":
        return EXIT.WRONG_KEY;
      default:
        return EXIT.FAILURE;
    }
  }
  if ((err as Error | undefined)?.name === "AbortError") return EXIT.INTERRUPTED;
  return EXIT.FAILURE;
}

/** One line for a human: the error's own message, which names the object, path or key. */
export function messageFor(err: unknown): string {
  // "config: config: cannot read …" says the same thing twice: the file itself is the key.
  if (err instanceof ConfigError && err.key === "config") return `config: ${err.detail}`;
  if (err instanceof VaultikError) return err.message;
  if ((err as Error | undefined)?.name === "AbortError") return "interrupted";
  if (err instanceof Error) {
    const code = (err as NodeJS.ErrnoException).code;
    // Node's fs errors already name the path ("ENOSPC: no space left on device, write").
    return code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
  }
  return errorMessage(err);
}
