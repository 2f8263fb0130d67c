import { Cron } from "croner";
import { CHUNK_SIZE_MAX, CHUNK_SIZE_MIN, chunkerParams } from "../chunk/fastcdc.js";
import { ConfigError, errorMessage } from "../errors.js";
import type { RetentionPolicy } from "../prune/policy.js";
import { formatBytes } from "../util/units.js";
import { type Context, resolvePath } from "./context.js";
import { DEFAULTS } from "./keys.js";
import { readSecret } from "./secrets.js";
import { parseSize } from "./units.js";
import type { CommandSource, HooksConfig, ServeConfig, StatusConfig } from "./types.js";
import { durationOr, optCount, optDuration, optList, optSize, optString, reqString, stringItems } from "./values.js";
import { asSection, describe, isMapping, keyOf, type Section, subsection, typeName, valueOf } from "./yaml.js";

// The checks of each setting beyond its type: ranges, cross-key rules, uniqueness.

const MiB = 1024 * 1024;

/** `optional`: the section has commands or databases, which are something to back up on their own. */
export function readSourceDirs(top: Section, ctx: Context, optional = false): string[] {
  const key = keyOf(top, "source_dirs");
  const list = optList(top, "source_dirs");
  if (list === undefined && optional) return [];
  if (list === undefined) throw new ConfigError(key, "required: a list of directories to back up, e.g. [/etc, ./data] (or give commands or databases)");
  if (list.length === 0 && !optional) throw new ConfigError(key, "must list at least one directory");
  return [...new Set(stringItems(list, key).map((dir) => resolvePath(dir, ctx)))];
}

/** `schedule` of `s` (the top level, or a database's), checked to be a cron expression that fires. */
export function readSchedule(s: Section): string | undefined {
  const expr = optString(s, "schedule");
  if (expr === undefined) return undefined;
  const key = keyOf(s, "schedule");
  let job: Cron;
  try {
    job = new Cron(expr, { paused: true });
  } catch (err) {
    const reason = errorMessage(err).replace(/^CronPattern:\s*/, "");
    throw new ConfigError(key, `${JSON.stringify(expr)} is not a valid cron expression: ${reason}`, { cause: err });
  }
  const next = job.nextRun();
  job.stop();
  // Croner accepts patterns such as "0 0 31 2 *" (February 31st) that can never fire.
  if (next === null) throw new ConfigError(key, `${JSON.stringify(expr)} never matches any date`);
  return expr;
}

export function readChunkSize(top: Section): number {
  const size = optSize(top, "chunk_size") ?? parseSize(DEFAULTS.chunkSize, "chunk_size");
  try {
    chunkerParams(size);
  } catch (err) {
    if (!(err instanceof RangeError)) throw err;
    const range = `${formatBytes(CHUNK_SIZE_MIN)} to ${formatBytes(CHUNK_SIZE_MAX)}`;
    throw new ConfigError("chunk_size", `must be from ${range}, got ${describe(valueOf(top, "chunk_size"))}`, { cause: err });
  }
  return size;
}

/** Below this, node and SQLite alone would not fit, let alone one worker. */
const MEMORY_LIMIT_MIN = 128 * MiB;

export function readMemoryLimit(top: Section): number {
  const limit = optSize(top, "memory_limit") ?? parseSize(DEFAULTS.memoryLimit, "memory_limit");
  if (limit < MEMORY_LIMIT_MIN) {
    throw new ConfigError("memory_limit", `must be at least ${formatBytes(MEMORY_LIMIT_MIN)}, got ${describe(valueOf(top, "memory_limit"))}`);
  }
  return limit;
}

export function readBlobSizeLimit(top: Section, chunkSize: number): number {
  // Unset, the limit grows with chunk_size so the smallest default still holds four chunks.
  const limit = optSize(top, "blob_size_limit") ?? Math.max(parseSize(DEFAULTS.blobSizeLimit, "blob_size_limit"), 4 * chunkSize);
  const got = describe(valueOf(top, "blob_size_limit") ?? DEFAULTS.blobSizeLimit);
  if (limit < 4 * chunkSize && 4 * chunkSize > MiB) {
    throw new ConfigError(
      "blob_size_limit",
      `must be at least 4 × chunk_size = ${formatBytes(4 * chunkSize)}, got ${got}: ` +
        "a chunk can grow to 4 × chunk_size and a blob must hold at least one",
    );
  }
  if (limit < MiB) {
    throw new ConfigError("blob_size_limit", `must be at least 1 MiB, got ${got}: smaller blobs mean many tiny uploads`);
  }
  return limit;
}

/** One "/" at the end, none at the start, no "." or ".." segments: the form keys are built from. */
export function readIndexPrefix(top: Section): string {
  const text = optString(top, "index_prefix") ?? DEFAULTS.indexPrefix;
  const segments = text.split("/").filter((seg) => seg !== "");
  if (segments.length === 0) throw new ConfigError("index_prefix", `must name a folder such as "index/", got ${JSON.stringify(text)}`);
  if (segments.some((seg) => seg === "." || seg === "..")) {
    throw new ConfigError("index_prefix", `must not contain "." or ".." segments, got ${JSON.stringify(text)}`);
  }
  return `${segments.join("/")}/`;
}

const RETENTION_COUNTS = [
  ["keep_last", "keepLast"],
  ["keep_hourly", "keepHourly"],
  ["keep_daily", "keepDaily"],
  ["keep_weekly", "keepWeekly"],
  ["keep_monthly", "keepMonthly"],
  ["keep_yearly", "keepYearly"],
] as const;

export function readRetention(top: Section): RetentionPolicy {
  const s = subsection(top, "retention");
  const policy: RetentionPolicy = {};
  if (s === undefined) return policy;
  for (const [key, field] of RETENTION_COUNTS) {
    const n = optCount(s, key);
    if (n !== undefined) policy[field] = n;
  }
  const within = optDuration(s, "keep_within");
  if (within !== undefined) policy.keepWithin = within;
  return policy;
}

export function readHooks(top: Section): HooksConfig | undefined {
  const s = subsection(top, "hooks");
  if (s === undefined) return undefined;
  return {
    preBackup: optString(s, "pre_backup"),
    postBackup: optString(s, "post_backup"),
    timeout: durationOr(s, "timeout", DEFAULTS.hookTimeout, 1),
  };
}

export function readCommands(top: Section): CommandSource[] {
  const names = new Set<string>();
  const paths = new Set<string>();
  return (optList(top, "commands") ?? []).map((raw, i) => {
    // Also read inside an app (apps[2].commands[0]): errors name the key where it is.
    const s = asSection(raw, `${keyOf(top, "commands")}[${i}]`, top.schema === "" ? "commands[]" : `${top.schema}.commands[]`);
    const command = { name: reqString(s, "name"), run: reqString(s, "run"), path: snapshotPath(s) };
    if (names.has(command.name)) throw new ConfigError(keyOf(s, "name"), `${JSON.stringify(command.name)} is used by an earlier command`);
    if (paths.has(command.path)) throw new ConfigError(keyOf(s, "path"), `${JSON.stringify(command.path)} is used by an earlier command`);
    names.add(command.name);
    paths.add(command.path);
    return command;
  });
}

function snapshotPath(s: Section): string {
  return relativeSnapshotPath(reqString(s, "path"), keyOf(s, "path"));
}

/** A snapshot path as sources store it: relative, "/"-separated, without "." segments. */
export function relativeSnapshotPath(text: string, key: string): string {
  if (text.startsWith("/")) throw new ConfigError(key, `must be relative, e.g. "databases/app.dump", got ${JSON.stringify(text)}`);
  const segments = text.split("/").filter((seg) => seg !== "" && seg !== ".");
  if (segments.includes("..")) throw new ConfigError(key, `must not contain "..", got ${JSON.stringify(text)}`);
  if (segments.length === 0) throw new ConfigError(key, `must name a file, got ${JSON.stringify(text)}`);
  return segments.join("/");
}

export function readStatus(top: Section, ctx: Context): StatusConfig | undefined {
  const s = subsection(top, "status");
  if (s === undefined) return undefined;
  const listen = reqString(s, "listen");
  return { listen, ...hostPort(listen, keyOf(s, "listen")), token: readSecret(s, "token", "VAULTIK_STATUS_TOKEN", ctx) };
}

export function hostPort(text: string, key: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535) {
    throw new ConfigError(key, `expected host:port with a port from 0 to 65535, e.g. 127.0.0.1:9812 or [::1]:9812, got ${JSON.stringify(text)}`);
  }
  return { host: m[1] ?? m[2] ?? "", port };
}

export { readAlerts } from "./alerts.js";

const HOST_NAME = /^[A-Za-z0-9.-]{1,64}$/;

/** `serve:`: stale_after, and per host (named as in snapshot ids) its own. */
export function readServe(top: Section): ServeConfig | undefined {
  const s = subsection(top, "serve");
  if (s === undefined) return undefined;
  const positive = (sec: Section) => {
    const ms = optDuration(sec, "stale_after");
    if (ms !== undefined && ms < 1) throw new ConfigError(keyOf(sec, "stale_after"), `must be longer than 0, got ${describe(valueOf(sec, "stale_after"))}`);
    return ms;
  };
  const hosts = new Map<string, number>();
  const raw = valueOf(s, "hosts");
  if (raw !== undefined && !isMapping(raw)) throw new ConfigError(keyOf(s, "hosts"), `expected a mapping of host names, got ${typeName(raw)}`);
  for (const [name, value] of Object.entries(raw ?? {})) {
    const key = `${keyOf(s, "hosts")}.${name}`;
    if (!HOST_NAME.test(name)) throw new ConfigError(key, "is not a host name as snapshot ids have it (letters, digits, . and -)");
    // `laptop:` and nothing after it: not given, as everywhere in the file.
    if (value === null) continue;
    const ms = positive(asSection(value, key, "serve.hosts.*"));
    if (ms !== undefined) hosts.set(name, ms);
  }
  return { staleAfter: positive(s), hosts };
}
