import { closeSync, openSync, unlinkSync } from "node:fs";
import type { Command } from "commander";
import { generateIdentity } from "../crypto/keys.js";
import { UsageError } from "../errors.js";
import { writeAllSync } from "../util/fsio.js";
import type { Io } from "./io.js";

export function registerKeygen(program: Command, io: Io): void {
  program
    .command("keygen")
    .description("create an age identity (like age-keygen) and print its public key")
    .option("-o, --output <file>", "write the identity to FILE (mode 0600, never overwritten) instead of stdout")
    .action(async (flags: { output?: string }) => {
      const { identity, recipient } = await generateIdentity();
      const text = `# created: ${new Date().toISOString().replace(/\.\d+Z$/, "Z")}\n# public key: ${recipient}\n${identity}\n`;
      if (flags.output === undefined) {
        io.out(text.trimEnd());
        return;
      }
      writeNewKeyFile(flags.output, text);
      io.err(`identity written to ${flags.output}; keep it off the backed-up host`);
      io.out(recipient);
    });
}

/** Creates `path` (never replacing a file: it may be the only copy of a key) with mode 0600. */
function writeNewKeyFile(path: string, text: string): void {
  let fd: number;
  try {
    fd = openSync(path, "wx", 0o600);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new UsageError("--output", code === "EEXIST" ? `${path} exists; refusing to overwrite a key` : `cannot create ${path}: ${code}`, { cause: err });
  }
  try {
    writeAllSync(fd, Buffer.from(text));
  } catch (err) {
    // A half-written key is worse than none: it looks like a key.
    closeSync(fd);
    unlinkSync(path);
    throw err;
  }
  closeSync(fd);
}
