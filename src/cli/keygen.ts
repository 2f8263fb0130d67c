import { writeFileSync } from "node:fs";
import type { Command } from "commander";
import { generateIdentity } from "../crypto/keys.js";
import { ConfigError } from "../errors.js";
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
      try {
        writeFileSync(flags.output, text, { mode: 0o600, flag: "wx" });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new ConfigError("--output", code === "EEXIST" ? `${flags.output} exists; refusing to overwrite a key` : `cannot write ${flags.output}: ${code}`);
      }
      io.err(`identity written to ${flags.output}; keep it off the backed-up host`);
      io.out(recipient);
    });
}
