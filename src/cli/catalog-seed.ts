import { accessSync, constants, createReadStream, statSync } from "node:fs";
import { once } from "node:events";
import type { Command } from "commander";
import { acquireLocalLock } from "../backup/lock.js";
import { openCheckedCatalog, damageWarning } from "../catalog/damage.js";
import { recipientSetId } from "../catalog/recipients.js";
import { importSeed, seedLines, splitLines, type SeedHeader } from "../catalog/seed.js";
import { loadConfig } from "../config/index.js";
import { parseRecipient, type X25519Recipient } from "../crypto/keys.js";
import { ConfigError, UsageError } from "../errors.js";
import { compressStream, decompressStream } from "../repo/snapshot-zstd.js";
import { withSnapshot } from "../snapshot/open.js";
import { blobSealedToOtherCount, seedRecords } from "../snapshot/seed.js";
import { makeDirsSync } from "../util/mkdir.js";
import { dirname } from "node:path";
import { loadIdentities, repoFromArgs, storeFromConfig } from "./context.js";
import type { Io } from "./io.js";
import { Repository } from "../repo/repository.js";

// A lost local index need not mean uploading everything again: `export-catalog` (on the
// machine with the private key) writes a catalog seed from the host's latest snapshot, and
// `import-catalog` (on the host) fills a new index from it. Format: docs/FORMAT.md §5.1.

const SENSITIVE = `
The seed holds no secret and no file contents, only metadata: every file's path, size, mode,
owner and mtime in the host's latest snapshot, and chunk and blob hashes. That IS sensitive
metadata (the bucket never holds it in the clear): move it to the host as you would the index
itself, and delete it once imported.`;

interface ExportFlags {
  config?: string;
  identity?: string;
  indexPrefix?: string;
  host: string;
  recipient?: string[];
}

export function registerCatalogSeed(program: Command, io: Io): void {
  program
    .command("export-catalog")
    .description("write a catalog seed for HOST's local index to stdout, from its latest snapshot (needs the private key)")
    .argument("[bucket_prefix...]", "BUCKET [PREFIX], unless --config is given")
    .requiredOption("--host <host>", "the host whose index the seed is for (as in its snapshot ids)")
    .option("--recipient <age1…>", "a public key the host seals to (repeat for each of its age_recipient keys; default: --config's)", (v: string, all: string[] | undefined) => [...(all ?? []), v])
    .option("-c, --config <file>", "take the repository, and the recipients, from this config (the host's)")
    .option("--identity <file>", "age identity file (default: VAULTIK_PRIVATE_KEY or VAULTIK_PRIVATE_KEY_FILE)")
    .option("--index-prefix <prefix>", "where snapshots live in the repository")
    .addHelpText("after", `${SENSITIVE}\n\nExample: vaultik export-catalog my-bucket host1 --host web1 --recipient age1… > web1.seed`)
    .action(async (args: string[], flags: ExportFlags) => {
      if (io.stdout.isTTY) throw new UsageError("stdout", "the seed is binary: redirect it to a file (… > host.seed)");
      const { repo, config } = await repoFromArgs(args, 0, flags);
      const identities = loadIdentities(flags.identity);
      const recipients = flags.recipient !== undefined ? flags.recipient.map(parseRecipientArg) : config?.recipients;
      if (!recipients || recipients.length === 0) {
        throw new UsageError("--recipient", "which keys does the host seal to? pass --recipient for each of its age_recipient keys, or --config with its config");
      }
      // An age header does not name its recipients: the set is the user's word, and at least
      // the key that opens the snapshot must be in it.
      const keys = new Set(recipients.map((r) => r.publicKey.toString("hex")));
      if (!identities.some((i) => keys.has(i.publicKey.toString("hex")))) {
        throw new UsageError("--recipient", "none of these recipients is the public key of the private key given; list every key the host seals to");
      }
      const abort = new AbortController();
      const stopSignals = io.onInterrupt(() => abort.abort());
      try {
        const snapshot = await repo.findSnapshot("latest", { host: flags.host, signal: abort.signal });
        await withSnapshot(
          repo,
          snapshot,
          identities,
          async (reader) => {
            const other = await blobSealedToOtherCount(repo, reader, keys.size, abort.signal);
            if (other) {
              throw new UsageError(
                "--recipient",
                `blob ${other.blob} of snapshot ${snapshot.id} is sealed to ${other.stanzas} key(s), not to the ${keys.size} given; list every key the host seals to`,
              );
            }
            const header = { host: flags.host, snapshot: snapshot.id, recipients: recipientSetId(recipients), created: new Date().toISOString() };
            const text = async function* () {
              for await (const line of seedLines(header, seedRecords(reader))) yield Buffer.from(line);
            };
            for await (const frame of compressStream(text(), { signal: abort.signal })) {
              if (!io.stdout.write(frame)) await once(io.stdout, "drain", { signal: abort.signal });
            }
          },
          abort.signal,
        );
        io.err(`catalog seed of ${flags.host} written from snapshot ${snapshot.id}`);
      } finally {
        stopSignals();
      }
    });

  program
    .command("import-catalog")
    .description("seed CONFIG's local index from a catalog seed (made by export-catalog), so the next backup uploads only what is missing")
    .argument("<seed>", "the seed file")
    .argument("<config>", "YAML config file of this host")
    .option("--force", "add the seed to an index that already holds data (rows already there are kept)")
    .addHelpText(
      "after",
      `
Every blob the seed names must be in the repository listing with the same size, else it is
dropped with its chunks and the files that need them. A file row from the seed is trusted on
size and mtime by the next backup (a snapshot records no ctime or inode), which then records
its full stamp.
${SENSITIVE}`,
    )
    .action(async (seed: string, configPath: string, flags: { force?: boolean }) => {
      assertReadableFile("SEED", seed);
      const config = await loadConfig(configPath);
      const repo = new Repository(storeFromConfig(config), config.indexPrefix);
      const wanted = recipientSetId(config.recipients);
      makeDirsSync(dirname(config.indexPath), 0o700);
      const lock = acquireLocalLock(`${config.indexPath}.lock`);
      try {
        const { catalog, damage } = openCheckedCatalog(config.indexPath);
        if (damage) io.err(`vaultik: warning: ${damageWarning(config.indexPath, damage)}`);
        try {
          const held = catalog.counts();
          if (!flags.force && (held.blobs > 0 || held.files > 0)) {
            throw new UsageError("--force", `the local index ${config.indexPath} already holds ${held.blobs} blob(s) and ${held.files} file(s); add --force to add the seed to them`);
          }
          const listed = new Map((await repo.listBlobs()).map((b) => [b.name, b.size] as const));
          const onHeader = (h: SeedHeader) => {
            if (h.recipients !== wanted) {
              throw new ConfigError("age_recipient", `the seed ${seed} lists blobs sealed to other recipients than this config's; export it again with this config (--config) or its keys (--recipient)`);
            }
          };
          const plain = decompressStream(createReadStream(seed), seed);
          const r = await importSeed(catalog, splitLines(plain, seed), { seed, listed, onHeader });
          io.err(`seeded ${config.indexPath}: ${r.blobs} blob(s), ${r.chunks} chunk(s), ${r.files} file(s)`);
          if (r.droppedBlobs > 0) {
            io.err(
              `  dropped ${r.droppedBlobs} blob(s) the repository does not list with their size, with ${r.droppedChunks} chunk(s) ` +
                `and ${r.droppedFiles} file(s) that need them (the next backup uploads those again)`,
            );
          }
        } finally {
          catalog.close();
        }
      } finally {
        lock.release();
      }
    });
}

function parseRecipientArg(text: string): X25519Recipient {
  try {
    return parseRecipient(text, "--recipient");
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError("--recipient", err.detail, { cause: err });
    throw err;
  }
}

function assertReadableFile(argument: string, path: string): void {
  try {
    if (!statSync(path).isFile()) throw new UsageError(argument, `${path} is not a file`);
    accessSync(path, constants.R_OK);
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(argument, `cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? "error"})`, { cause: err });
  }
}
