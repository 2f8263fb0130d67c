import type { Command } from "commander";
import { EXIT } from "./exit.js";

// The part of each command's --help that is the same kind of fact for every command: how to
// name the repository, and which exit codes it can return. Kept in one table beside exit.ts so
// a command's help cannot drift from the codes the CLI maps errors to.

const MEANING: Record<number, string> = {
  [EXIT.OK]: "success",
  [EXIT.FAILURE]: "failure (storage, integrity, damage found)",
  [EXIT.USAGE]: "bad arguments, bad config or missing key",
  [EXIT.PARTIAL]: "snapshot written, but some files could not be read (listed on stderr)",
  [EXIT.NOT_FOUND]: "snapshot or path not found",
  [EXIT.LOCKED]: "locked: another backup of this config, or another prune, is running",
  [EXIT.WRONG_KEY]: "wrong key: no identity matches",
  [EXIT.INTERRUPTED]: "interrupted (SIGINT/SIGTERM)",
};

const { OK, FAILURE, USAGE, PARTIAL, NOT_FOUND, LOCKED, WRONG_KEY, INTERRUPTED } = EXIT;

/** Per command: whether it takes `BUCKET [PREFIX]`, and the exit codes it can return. */
const COMMANDS: Record<string, { repository: boolean; exits: readonly number[] }> = {
  keygen: { repository: false, exits: [OK, FAILURE, USAGE] },
  backup: { repository: false, exits: [OK, FAILURE, USAGE, PARTIAL, LOCKED, INTERRUPTED] },
  snapshots: { repository: true, exits: [OK, FAILURE, USAGE, WRONG_KEY] },
  restore: { repository: true, exits: [OK, FAILURE, USAGE, NOT_FOUND, WRONG_KEY, INTERRUPTED] },
  fetch: { repository: true, exits: [OK, FAILURE, USAGE, NOT_FOUND, WRONG_KEY, INTERRUPTED] },
  prune: { repository: true, exits: [OK, FAILURE, USAGE, LOCKED, WRONG_KEY] },
  forget: { repository: true, exits: [OK, FAILURE, USAGE, NOT_FOUND] },
  check: { repository: true, exits: [OK, FAILURE, USAGE, WRONG_KEY] },
  "export-catalog": { repository: true, exits: [OK, FAILURE, USAGE, NOT_FOUND, WRONG_KEY, INTERRUPTED] },
  "import-catalog": { repository: false, exits: [OK, FAILURE, USAGE, LOCKED] },
  "health-check": { repository: false, exits: [OK, FAILURE, USAGE] },
  serve: { repository: true, exits: [OK, FAILURE, USAGE, WRONG_KEY] },
  version: { repository: false, exits: [OK] },
};

const REPOSITORY = `
Repository: BUCKET [PREFIX], or --config FILE (the repository of that config)
  BUCKET  an S3 bucket: NAME or s3://NAME. Endpoint from VAULTIK_S3_ENDPOINT (default: AWS,
          or AWS_ENDPOINT_URL_S3), credentials from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY
          (or AWS_ACCESS_KEY_ID_FILE and AWS_SECRET_ACCESS_KEY_FILE), region from AWS_REGION.
          Or a local directory: /path, ./path, dir/sub (anything with a /), file:///path, or
          the name of an existing directory (write s3://NAME for a bucket of the same name).
  PREFIX  where the repository is in the bucket or directory; optional (default: none).
          An explicit "" also means none.`;

const KEY = `

Private key (to decrypt): --identity FILE, VAULTIK_PRIVATE_KEY (the key itself) or
VAULTIK_PRIVATE_KEY_FILE. A snapshot database may decompress to at most 4 GiB; set
VAULTIK_MAX_SNAPSHOT_DB (e.g. 8GiB) for larger ones.`;

/** Appends the repository, key and exit-code sections to each command's --help. */
export function addHelpSections(program: Command): void {
  for (const cmd of program.commands) {
    const facts = COMMANDS[cmd.name()];
    if (!facts) continue;
    const exits = facts.exits.map((c) => `  ${String(c).padEnd(4)}${MEANING[c]}`).join("\n");
    const decrypts = facts.exits.includes(WRONG_KEY);
    cmd.addHelpText("after", `${facts.repository ? REPOSITORY : ""}${decrypts ? KEY : ""}\n\nExit codes:\n${exits}\n`);
  }
}
