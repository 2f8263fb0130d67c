import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import { ConfigError } from "../errors.js";
import { readApps, readHostname, readJob, readSources } from "./apps.js";
import { type Context, fsReason } from "./context.js";
import { readRecipients } from "./recipients.js";
import { readIndexPath, readStore } from "./store.js";
import type { Config, ParseConfigOptions } from "./types.js";
import {
  readAlerts,
  readBlobSizeLimit,
  readMemoryLimit,
  readChunkSize,
  readIndexPrefix,
  readServe,
  readStatus,
} from "./validate.js";
import { optRate } from "./values.js";
import { blameVariable, nameMissingVariable, overlayEnv } from "./env.js";
import { asSection, parseYaml, type Section } from "./yaml.js";

// The YAML config file, checked completely before anything runs. Unknown keys are errors, not
// warnings: a misspelt `exlcude` or `keep_dayly` silently falling back to its default would back
// up what the user meant to skip or prune what they meant to keep, and nobody reads warnings
// under cron. Messages name the dotted key (`s3.bucket`, `commands[1].path`) and never contain a
// secret: credentials, tokens, alert URLs (webhook URLs embed tokens) and command lines are
// described, not quoted, because error text ends up in cron mail and CI logs.

export { CONFIG_KEYS, describeConfigKeys } from "./keys.js";
export type { AlertsConfig, CommandSource, Config, ConfigKeyInfo, ConfigKeyKind, DatabaseSource, HooksConfig, ParseConfigOptions, ServeConfig, StatusConfig, StoreConfig } from "./types.js";
export type { AlertSeverity, AlertUrlChannel, EmailAlertConfig, SmtpSecurity } from "./types.js";
export { appJob, appRetentions, appsOf, DEFAULT_APP, findApp } from "./apps.js";
export type { AppConfig } from "./types.js";

/**
 * Reads and checks the config file at `path` with the VAULTIK_ variables of `env` over it;
 * `undefined`: the environment alone (a container with no YAML).
 */
export async function loadConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
  if (path === undefined) return checkConfig(undefined, undefined, { env });
  const abs = resolve(path);
  let text: string;
  try {
    text = await readFile(abs, "utf8");
  } catch (err) {
    throw new ConfigError("config", `cannot read ${abs}: ${fsReason(err)}`, { cause: err });
  }
  return parseConfig(text, { path: abs, env });
}

/** Checks config text. Reads nothing but `*_file` secrets and recipient files. */
export function parseConfig(text: string, options: ParseConfigOptions): Config {
  const path = resolve(options.path);
  return checkConfig(parseYaml(text, path), path, options);
}

/** The one check of a config, from a file (`path`), the environment, or both. */
function checkConfig(raw: unknown, path: string | undefined, options: Omit<ParseConfigOptions, "path">): Config {
  const env = options.env ?? process.env;
  const overlaid = overlayEnv(raw, env);
  if (path === undefined && !overlaid.used) {
    throw new ConfigError(
      "config",
      "no config file and no VAULTIK_* variables: give a config file, or set at least VAULTIK_AGE_RECIPIENT, VAULTIK_SOURCE_DIRS and VAULTIK_STORE (or VAULTIK_S3_BUCKET)",
    );
  }
  const ctx: Context = {
    // Without a file, relative paths mean what they mean in a shell: from the working directory.
    dir: path === undefined ? process.cwd() : dirname(path),
    env,
    readFile: options.readFile ?? ((p) => readFileSync(p, "utf8")),
  };
  try {
    return readConfig(asSection(overlaid.raw, "", ""), path, ctx);
  } catch (err) {
    const blamed = blameVariable(err, overlaid.origins);
    throw path === undefined ? nameMissingVariable(blamed) : blamed;
  }
}

function readConfig(top: Section, path: string | undefined, ctx: Context): Config {
  const chunkSize = readChunkSize(top);
  const store = readStore(top, ctx);
  const hostname = readHostname(top);
  const apps = readApps(top, ctx, hostname);
  // With apps, the top-level job keys are only the apps' defaults (config/apps.ts).
  const sources = apps ? { sourceDirs: [...new Set(apps.flatMap((a) => a.sourceDirs))], commands: [], databases: [] } : readSources(top, ctx);
  const job = { ...sources, ...readJob(top) };
  return {
    path,
    dir: ctx.dir,
    ...readRecipients(top, ctx),
    sourceDirs: job.sourceDirs,
    exclude: job.exclude,
    store,
    backupInterval: job.backupInterval,
    fullScanInterval: job.fullScanInterval,
    minTimeBetweenRun: job.minTimeBetweenRun,
    schedule: job.schedule,
    indexPath: readIndexPath(top, ctx, path, store),
    chunkSize,
    blobSizeLimit: readBlobSizeLimit(top, chunkSize),
    memoryLimit: readMemoryLimit(top),
    indexPrefix: readIndexPrefix(top),
    retention: job.retention,
    hooks: job.hooks,
    commands: job.commands,
    databases: job.databases,
    status: readStatus(top, ctx),
    alerts: readAlerts(top, ctx),
    serve: readServe(top),
    limitUpload: optRate(top, "limit_upload"),
    ...(hostname === undefined ? {} : { hostname }),
    ...(apps === undefined ? {} : { apps }),
  };
}
