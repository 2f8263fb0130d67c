import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import { basename, dirname, extname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { Cron } from "croner";
import { LineCounter, parseDocument } from "yaml";
import { CHUNK_SIZE_MAX, CHUNK_SIZE_MIN, chunkerParams } from "./chunk/fastcdc.js";
import { parseRecipient, type X25519Recipient } from "./crypto/keys.js";
import { ConfigError } from "./errors.js";
import type { RetentionPolicy } from "./prune/policy.js";
import { formatBytes, parseDuration, parseRate, parseSize } from "./util/units.js";

// The YAML config file, checked completely before anything runs. Unknown keys are errors, not
// warnings: a misspelt `exlcude` or `keep_dayly` silently falling back to its default would back
// up what the user meant to skip or prune what they meant to keep, and nobody reads warnings
// under cron. Messages name the dotted key (`s3.bucket`, `commands[1].path`) and never contain a
// secret: credentials, tokens, alert URLs (webhook URLs embed tokens) and command lines are
// described, not quoted, because error text ends up in cron mail and CI logs.

/** Where the repository lives. */
export type StoreConfig =
  | {
      kind: "fs";
      /** Absolute directory of a local repository. */
      path: string;
    }
  | {
      kind: "s3";
      bucket: string;
      /** Folder inside the bucket, without leading or trailing "/"; "" for the bucket root. */
      prefix: string;
      /** Endpoint of a non-AWS S3 service; undefined means AWS. */
      endpoint?: string;
      region?: string;
      accessKeyId?: string;
      secretAccessKey?: string;
      /** Address buckets as `endpoint/bucket` (MinIO, s3rver) instead of `bucket.endpoint`. */
      forcePathStyle?: boolean;
    };

export interface HooksConfig {
  /** Shell command run before each backup. */
  preBackup?: string;
  /** Shell command run after each backup. */
  postBackup?: string;
  /** How long a hook may run, in ms. */
  timeout: number;
}

/** A command whose standard output is stored in the snapshot as a file. */
export interface CommandSource {
  /** Unique name, for logs and errors. */
  name: string;
  /** Shell command line. May hold credentials: never print it. */
  run: string;
  /** Where the output appears in the snapshot: relative, "/"-separated, no "." or "..". */
  path: string;
}

export interface StatusConfig {
  /** `listen` as written, e.g. "127.0.0.1:9812". */
  listen: string;
  host: string;
  /** 0 lets the system choose. */
  port: number;
  /** Bearer token the status server requires, if any. */
  token?: string;
}

export interface AlertsConfig {
  webhook?: string;
  /** ntfy topic URL, e.g. https://ntfy.sh/my-topic. */
  ntfy?: string;
  /** Alert when no backup has succeeded for this long, in ms. */
  staleAfter: number;
  /** While runs keep failing, remind this often (one alert per failing streak otherwise), in ms. */
  repeatAfter: number;
}

/** A checked config. Paths are absolute, durations in ms, sizes in bytes. */
export interface Config {
  /** Absolute path of the config file. */
  path: string;
  /** Its directory: relative paths in the file resolve against it. */
  dir: string;
  /** Public keys every blob and snapshot is encrypted to. */
  recipients: X25519Recipient[];
  /** The same keys as `age1…` text, in the same order. */
  recipientKeys: string[];
  /** Directories to back up, absolute and normalised, without duplicates. */
  sourceDirs: string[];
  /** gitignore-style patterns of paths to skip. */
  exclude: string[];
  store: StoreConfig;
  /** How often the daemon backs up. */
  backupInterval: number;
  /** How often the daemon rescans everything instead of trusting the watcher. */
  fullScanInterval: number;
  /** Shortest gap between two backups, however many changes arrive. */
  minTimeBetweenRun: number;
  /** Cron expression, already checked to be valid and to match some date. */
  schedule?: string;
  /** Local SQLite index of what has been uploaded. */
  indexPath: string;
  /** Target average chunk size, valid for `chunkerParams`. */
  chunkSize: number;
  /** Size at which a blob is closed and uploaded. At least 1 MiB and 4 * chunkSize. */
  blobSizeLimit: number;
  /** Repository folder for snapshot metadata: no leading "/", exactly one trailing "/". */
  indexPrefix: string;
  /** Which snapshots prune keeps; empty when the file has no `retention`. */
  retention: RetentionPolicy;
  hooks?: HooksConfig;
  commands: CommandSource[];
  status?: StatusConfig;
  alerts?: AlertsConfig;
  /** Upload bandwidth limit in bytes per second. */
  limitUpload?: number;
}

export interface ParseConfigOptions {
  /** Path of the config file: relative paths inside resolve against its directory. */
  path: string;
  /** Environment for secret and recipient fallbacks and XDG_STATE_HOME. Default process.env. */
  env?: NodeJS.ProcessEnv;
  /** Reads `*_file` secrets and recipient files. Default fs.readFileSync as UTF-8. */
  readFile?: (path: string) => string;
}

/** One documented config key. `key` is dotted; `[]` stands for any list item. */
export interface ConfigKeyInfo {
  key: string;
  /** Default as a user would write it; absent for required or optional-without-default keys. */
  default?: string;
  required?: boolean;
  /** Environment variable used when neither the key nor its `_file` twin is given. */
  env?: string;
  description: string;
}

const DEFAULTS = {
  backupInterval: "1h",
  fullScanInterval: "24h",
  minTimeBetweenRun: "15m",
  chunkSize: "1MiB",
  blobSizeLimit: "16MiB",
  indexPrefix: "index/",
  hookTimeout: "10m",
  staleAfter: "26h",
  alertRepeat: "24h",
} as const;

const MiB = 1024 * 1024;

/**
 * Every key the config file accepts, with its default and a one-line description. Parsing
 * checks names against this list, so a key documented here is a key that is accepted.
 */
export const CONFIG_KEYS: readonly ConfigKeyInfo[] = [
  { key: "age_recipient", required: true, env: "VAULTIK_AGE_RECIPIENT", description: "age public key (age1…) that backups are encrypted to; a string or a list of several" },
  { key: "age_recipient_file", env: "VAULTIK_AGE_RECIPIENT_FILE", description: "file of age1… lines (# comments allowed), instead of age_recipient" },
  { key: "source_dirs", required: true, description: "list of directories to back up; relative paths resolve against the config file's directory; each must exist and be a directory when a backup starts" },
  { key: "exclude", default: "[]", description: "gitignore-style patterns of paths to skip, e.g. *.log, node_modules/, /build" },
  { key: "store", description: "local repository: a directory or file:/// URL (give store or s3, not both)" },
  { key: "s3", description: "S3-compatible repository (give store or s3, not both)" },
  { key: "s3.endpoint", description: "http(s) URL of a non-AWS service (MinIO, Garage, R2, B2, Ceph); omit for AWS" },
  { key: "s3.bucket", required: true, description: "bucket name, 3 to 63 characters" },
  { key: "s3.prefix", default: '""', description: "folder inside the bucket; slashes at either end are dropped" },
  { key: "s3.access_key_id", env: "AWS_ACCESS_KEY_ID", description: "access key id" },
  { key: "s3.access_key_id_file", env: "AWS_ACCESS_KEY_ID_FILE", description: "file holding the access key id, instead of access_key_id" },
  { key: "s3.secret_access_key", env: "AWS_SECRET_ACCESS_KEY", description: "secret access key" },
  { key: "s3.secret_access_key_file", env: "AWS_SECRET_ACCESS_KEY_FILE", description: "file holding the secret access key, instead of secret_access_key" },
  { key: "s3.region", description: "bucket region, e.g. us-east-1" },
  { key: "s3.force_path_style", description: "true to address buckets as endpoint/bucket (MinIO and most self-hosted services)" },
  { key: "backup_interval", default: DEFAULTS.backupInterval, description: "how often the daemon backs up" },
  { key: "full_scan_interval", default: DEFAULTS.fullScanInterval, description: "how often the daemon rescans every file instead of trusting the file watcher" },
  { key: "min_time_between_run", default: DEFAULTS.minTimeBetweenRun, description: "shortest gap between two backups, however many changes arrive" },
  { key: "schedule", description: 'cron expression for scheduled backups, e.g. "0 2 * * *"' },
  { key: "index_path", default: "$XDG_STATE_HOME/vaultik/<config name>-<hash12>.sqlite (~/.local/state without XDG_STATE_HOME)", description: "local SQLite index of what has been uploaded; the hash is of the repository and the config file's absolute path" },
  { key: "chunk_size", default: DEFAULTS.chunkSize, description: "target average chunk size, 256 B to 16 MiB; changing it stops deduplication against earlier backups" },
  { key: "blob_size_limit", default: DEFAULTS.blobSizeLimit, description: "size at which a blob is closed and uploaded; at least 1 MiB and 4 × chunk_size (default: 16 MiB or 4 × chunk_size, whichever is larger)" },
  { key: "index_prefix", default: DEFAULTS.indexPrefix, description: "repository folder for snapshot metadata" },
  { key: "retention", description: "which snapshots prune keeps; a count of 0 turns its rule off" },
  { key: "retention.keep_last", description: "keep the newest N snapshots" },
  { key: "retention.keep_hourly", description: "keep the newest snapshot of each of the last N hours that have one" },
  { key: "retention.keep_daily", description: "keep the newest snapshot of each of the last N days that have one" },
  { key: "retention.keep_weekly", description: "keep the newest snapshot of each of the last N ISO weeks that have one" },
  { key: "retention.keep_monthly", description: "keep the newest snapshot of each of the last N months that have one" },
  { key: "retention.keep_yearly", description: "keep the newest snapshot of each of the last N years that have one" },
  { key: "retention.keep_within", description: "keep every snapshot younger than this duration, e.g. 30d" },
  { key: "hooks", description: "shell commands run around each backup" },
  { key: "hooks.pre_backup", description: "shell command run before each backup" },
  { key: "hooks.post_backup", description: "shell command run after each backup" },
  { key: "hooks.timeout", default: DEFAULTS.hookTimeout, description: "how long a hook may run" },
  { key: "commands", default: "[]", description: "commands whose output is backed up as a file, e.g. a database dump" },
  { key: "commands[].name", required: true, description: "unique name of the command" },
  { key: "commands[].run", required: true, description: "shell command line whose standard output is stored" },
  { key: "commands[].path", required: true, description: 'where the output appears in the snapshot, e.g. "databases/app.dump"' },
  { key: "status", description: "HTTP status and metrics server" },
  { key: "status.listen", required: true, description: "host:port to listen on, e.g. 127.0.0.1:9812 or [::1]:9812" },
  { key: "status.token", env: "VAULTIK_STATUS_TOKEN", description: "bearer token clients must send" },
  { key: "status.token_file", env: "VAULTIK_STATUS_TOKEN_FILE", description: "file holding the token, instead of token" },
  { key: "alerts", description: "where to report failed or stale backups" },
  { key: "alerts.webhook", description: "http(s) URL that receives a JSON POST" },
  { key: "alerts.ntfy", description: "ntfy topic URL, e.g. https://ntfy.sh/my-topic" },
  { key: "alerts.stale_after", default: DEFAULTS.staleAfter, description: "alert when no backup has succeeded for this long" },
  { key: "alerts.repeat_after", default: DEFAULTS.alertRepeat, description: "while backups keep failing, send a reminder this often (one alert per failing streak otherwise)" },
  { key: "limit_upload", description: "upload bandwidth limit, e.g. 10MiB/s" },
];

/** The documented keys, for generating the README's config reference. */
export function describeConfigKeys(): readonly ConfigKeyInfo[] {
  return CONFIG_KEYS;
}

/** Reads and checks the config file at `path`. */
export async function loadConfig(path: string, env: NodeJS.ProcessEnv = process.env): Promise<Config> {
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
  const ctx: Context = {
    dir: dirname(path),
    env: options.env ?? process.env,
    readFile: options.readFile ?? ((p) => readFileSync(p, "utf8")),
  };
  const top = asSection(parseYaml(text, path), "", "");
  const chunkSize = readChunkSize(top);
  const store = readStore(top, ctx);
  return {
    path,
    dir: ctx.dir,
    ...readRecipients(top, ctx),
    sourceDirs: readSourceDirs(top, ctx),
    exclude: stringItems(optList(top, "exclude") ?? [], "exclude"),
    store,
    backupInterval: durationOr(top, "backup_interval", DEFAULTS.backupInterval, 1),
    fullScanInterval: durationOr(top, "full_scan_interval", DEFAULTS.fullScanInterval, 1),
    minTimeBetweenRun: durationOr(top, "min_time_between_run", DEFAULTS.minTimeBetweenRun, 0),
    schedule: readSchedule(top),
    indexPath: readIndexPath(top, ctx, path, store),
    chunkSize,
    blobSizeLimit: readBlobSizeLimit(top, chunkSize),
    indexPrefix: readIndexPrefix(top),
    retention: readRetention(top),
    hooks: readHooks(top),
    commands: readCommands(top),
    status: readStatus(top, ctx),
    alerts: readAlerts(top),
    limitUpload: optRate(top, "limit_upload"),
  };
}

interface Context {
  dir: string;
  env: NodeJS.ProcessEnv;
  readFile: (path: string) => string;
}

/** A YAML mapping being read: `path` is shown in errors, `schema` finds its keys in CONFIG_KEYS. */
interface Section {
  path: string;
  schema: string;
  values: Record<string, unknown>;
}

// ---- YAML and generic readers -------------------------------------------------------------

function parseYaml(text: string, path: string): unknown {
  const lineCounter = new LineCounter();
  // prettyErrors would append the offending source line, which may hold a secret.
  const doc = parseDocument(text, { lineCounter, prettyErrors: false });
  const [error] = doc.errors;
  if (error) {
    const { line, col } = lineCounter.linePos(error.pos[0]);
    throw new ConfigError("config", `${path}: YAML syntax error at line ${line}, column ${col}: ${error.message}`);
  }
  try {
    return doc.toJS();
  } catch (err) {
    throw new ConfigError("config", `${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function asSection(raw: unknown, path: string, schema: string): Section {
  if (!isMapping(raw)) {
    if (path !== "") throw wrongType(path, "a mapping", raw);
    const expected = "a mapping of settings such as age_recipient, source_dirs and store";
    if (raw === null || raw === undefined) throw new ConfigError("config", `the file is empty; expected ${expected}`);
    throw wrongType("config", expected, raw);
  }
  const known = knownKeys(schema);
  for (const key of Object.keys(raw)) {
    if (!known.includes(key)) throw unknownKey(path === "" ? key : `${path}.${key}`, key, known);
  }
  return { path, schema, values: raw };
}

function knownKeys(schema: string): string[] {
  const names = CONFIG_KEYS.flatMap(({ key }) => {
    if (schema === "") return [key];
    return key.startsWith(`${schema}.`) ? [key.slice(schema.length + 1)] : [];
  }).map((rest) => rest.split(/[.[]/)[0] ?? rest);
  return [...new Set(names)];
}

function unknownKey(path: string, key: string, known: readonly string[]): ConfigError {
  const guess = closest(key, known);
  return new ConfigError(path, guess === undefined ? "unknown key" : `unknown key (did you mean ${guess}?)`);
}

/** The known key within edit distance 2 of `key`, ignoring case, if there is one. */
function closest(key: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const candidate of known) {
    const d = editDistance(key.toLowerCase(), candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitute = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(substitute, (previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1));
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

function keyOf(s: Section, key: string): string {
  return s.path === "" ? key : `${s.path}.${key}`;
}

/** The value at `key`; an empty value (`key:` and nothing after it) counts as not given. */
function valueOf(s: Section, key: string): unknown {
  const v = s.values[key];
  return v === null ? undefined : v;
}

function subsection(s: Section, key: string): Section | undefined {
  const raw = valueOf(s, key);
  return raw === undefined ? undefined : asSection(raw, keyOf(s, key), s.schema === "" ? key : `${s.schema}.${key}`);
}

function optString(s: Section, key: string): string | undefined {
  const v = valueOf(s, key);
  if (v === undefined) return undefined;
  return nonEmptyString(v, keyOf(s, key));
}

function reqString(s: Section, key: string): string {
  const v = optString(s, key);
  if (v === undefined) throw new ConfigError(keyOf(s, key), "required");
  return v;
}

function nonEmptyString(v: unknown, key: string): string {
  if (typeof v !== "string") throw wrongType(key, "a string", v);
  if (v.trim() === "") throw new ConfigError(key, "must not be empty");
  return v.trim();
}

function optBool(s: Section, key: string): boolean | undefined {
  const v = valueOf(s, key);
  if (v !== undefined && typeof v !== "boolean") throw wrongType(keyOf(s, key), "true or false", v);
  return v;
}

function optList(s: Section, key: string): unknown[] | undefined {
  const v = valueOf(s, key);
  if (v !== undefined && !Array.isArray(v)) throw wrongType(keyOf(s, key), "a list", v);
  return v;
}

function stringItems(list: readonly unknown[], key: string): string[] {
  return list.map((item, i) => nonEmptyString(item, `${key}[${i}]`));
}

/** A non-negative whole number. */
function optCount(s: Section, key: string): number | undefined {
  const v = valueOf(s, key);
  if (v === undefined) return undefined;
  if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
    throw new ConfigError(keyOf(s, key), `expected a whole number of 0 or more, got ${describe(v)}`);
  }
  return v;
}

function optDuration(s: Section, key: string): number | undefined {
  const v = valueOf(s, key);
  if (v === undefined) return undefined;
  if (typeof v !== "string" && typeof v !== "number") throw wrongType(keyOf(s, key), "a duration such as 15m", v);
  return parseDuration(v, keyOf(s, key));
}

/** The duration at `key`, else `fallback`; at least `min` ms. */
function durationOr(s: Section, key: string, fallback: string, min: number): number {
  const ms = optDuration(s, key) ?? parseDuration(fallback, keyOf(s, key));
  if (ms < min) throw new ConfigError(keyOf(s, key), `must be longer than 0, got ${describe(valueOf(s, key))}`);
  return ms;
}

function optSize(s: Section, key: string): number | undefined {
  const v = valueOf(s, key);
  if (v === undefined) return undefined;
  if (typeof v !== "string" && typeof v !== "number") throw wrongType(keyOf(s, key), "a size such as 64MiB", v);
  return parseSize(v, keyOf(s, key));
}

function optRate(s: Section, key: string): number | undefined {
  const v = valueOf(s, key);
  if (v === undefined) return undefined;
  if (typeof v !== "string" && typeof v !== "number") throw wrongType(keyOf(s, key), "a rate such as 10MiB/s", v);
  return parseRate(v, keyOf(s, key));
}

/** An http(s) URL. Only `endpoint` is quoted in errors: webhook and ntfy URLs often embed tokens. */
function optUrl(s: Section, key: string, quote: boolean): string | undefined {
  const text = optString(s, key);
  if (text === undefined) return undefined;
  const expected = "expected an http:// or https:// URL";
  const shown = quote ? `, got ${JSON.stringify(text)}` : "";
  // "minio:9000" parses as a URL with the scheme "minio:", so look for "://" first.
  if (!text.includes("://")) throw new ConfigError(keyOf(s, key), `${expected}${shown} (missing http:// or https://?)`);
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(keyOf(s, key), `${expected}${shown || ", got something else"}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new ConfigError(keyOf(s, key), `${expected}, got a ${url.protocol} URL${quote ? ` (${JSON.stringify(text)})` : ""}`);
  }
  return text;
}

function wrongType(key: string, expected: string, got: unknown): ConfigError {
  const quoteHint = expected === "a string" && (typeof got === "number" || typeof got === "boolean") ? " (put it in quotes)" : "";
  const listHint = expected.startsWith("a list") && typeof got === "string" ? " (write [item] for a single item)" : "";
  return new ConfigError(key, `expected ${expected}, got ${typeName(got)}${quoteHint}${listHint}`);
}

function typeName(v: unknown): string {
  if (v === null || v === undefined) return "nothing";
  if (Array.isArray(v)) return "a list";
  if (isMapping(v)) return "a mapping";
  if (typeof v === "object") return "a YAML-tagged value";
  return typeof v === "string" ? "a string" : typeof v === "boolean" ? "a boolean" : "a number";
}

/** A non-secret value as a user wrote it, for messages about numbers and durations. */
function describe(v: unknown): string {
  return typeof v === "string" || typeof v === "number" ? JSON.stringify(v) : typeName(v);
}

function isMapping(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && Object.getPrototypeOf(v) === Object.prototype;
}

// ---- files, paths and secrets ---------------------------------------------------------------

/** `~` is the home directory; other relative paths resolve against the config's directory. */
function resolvePath(text: string, ctx: Context): string {
  if (text === "~" || text.startsWith("~/")) return resolve(home(ctx), text.slice(2));
  return resolve(ctx.dir, text);
}

function home(ctx: Context): string {
  return ctx.env["HOME"] || homedir();
}

function readTextFile(ctx: Context, path: string, key: string): string {
  try {
    return ctx.readFile(path);
  } catch (err) {
    throw new ConfigError(key, `cannot read ${path}: ${fsReason(err)}`, { cause: err });
  }
}

function fsReason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOENT") return "no such file";
  if (code === "EACCES" || code === "EPERM") return "permission denied";
  if (code === "EISDIR") return "is a directory";
  return code ?? "unreadable";
}

/**
 * A credential from, in order: the key itself, its `_file` twin, the environment variable
 * `envVar`, or a file named by `<envVar>_FILE` (Docker secrets). Giving both the key and its
 * `_file` twin is an error, since silently preferring one hides a stale copy of the other.
 */
function readSecret(s: Section, key: string, envVar: string, ctx: Context): string | undefined {
  const inline = optString(s, key);
  const file = optString(s, `${key}_file`);
  if (inline !== undefined && file !== undefined) throw eitherNotBoth(keyOf(s, key), `${key}_file`);
  if (inline !== undefined) return inline;
  if (file !== undefined) return secretFromFile(ctx, resolvePath(file, ctx), keyOf(s, `${key}_file`));
  const fromEnv = ctx.env[envVar]?.trim();
  if (fromEnv) return fromEnv;
  const envFile = ctx.env[`${envVar}_FILE`];
  return envFile ? secretFromFile(ctx, resolve(envFile), `${envVar}_FILE`) : undefined;
}

function secretFromFile(ctx: Context, path: string, key: string): string {
  const secret = readTextFile(ctx, path, key).trim();
  if (secret === "") throw new ConfigError(key, `${path} is empty`);
  return secret;
}

function eitherNotBoth(key: string, other: string): ConfigError {
  return new ConfigError(key, `give either ${key.split(".").pop()} or ${other}, not both`);
}

// ---- the settings -----------------------------------------------------------------------------

interface RecipientText {
  text: string;
  key: string;
}

function readRecipients(top: Section, ctx: Context): Pick<Config, "recipients" | "recipientKeys"> {
  const unique = new Map<string, X25519Recipient>();
  for (const { text, key } of recipientTexts(top, ctx)) {
    const recipient = parseRecipient(text, key);
    unique.set(text.trim(), recipient);
  }
  return { recipients: [...unique.values()], recipientKeys: [...unique.keys()] };
}

/** Recipient texts with the key each came from: the key, its file, the environment, in order. */
function recipientTexts(top: Section, ctx: Context): RecipientText[] {
  const inline = valueOf(top, "age_recipient");
  const file = optString(top, "age_recipient_file");
  if (inline !== undefined && file !== undefined) throw eitherNotBoth("age_recipient", "age_recipient_file");
  if (inline !== undefined) return inlineRecipients(inline);
  if (file !== undefined) return recipientFile(readTextFile(ctx, resolvePath(file, ctx), "age_recipient_file"), "age_recipient_file");
  const fromEnv = ctx.env["VAULTIK_AGE_RECIPIENT"]?.trim();
  if (fromEnv) return fromEnv.split(/[\s,]+/).filter(Boolean).map((text) => ({ text, key: "VAULTIK_AGE_RECIPIENT" }));
  const envFile = ctx.env["VAULTIK_AGE_RECIPIENT_FILE"];
  if (envFile) return recipientFile(readTextFile(ctx, resolve(envFile), "VAULTIK_AGE_RECIPIENT_FILE"), "VAULTIK_AGE_RECIPIENT_FILE");
  throw new ConfigError(
    "age_recipient",
    "required: the age public key (age1…) backups are encrypted to; or set age_recipient_file or VAULTIK_AGE_RECIPIENT",
  );
}

function inlineRecipients(v: unknown): RecipientText[] {
  if (typeof v === "string") return [{ text: nonEmptyString(v, "age_recipient"), key: "age_recipient" }];
  if (!Array.isArray(v)) throw wrongType("age_recipient", "a string or a list of strings", v);
  if (v.length === 0) throw new ConfigError("age_recipient", "must list at least one recipient");
  return stringItems(v, "age_recipient").map((text, i) => ({ text, key: `age_recipient[${i}]` }));
}

/** One recipient per line; `#` comments and blank lines ignored, as in age's recipients files. */
function recipientFile(content: string, key: string): RecipientText[] {
  const lines = content.split(/\r?\n/).flatMap((line, i) => {
    const text = line.trim();
    return text === "" || text.startsWith("#") ? [] : [{ text, key: `${key} line ${i + 1}` }];
  });
  if (lines.length === 0) throw new ConfigError(key, "contains no age1… line");
  return lines;
}

function readSourceDirs(top: Section, ctx: Context): string[] {
  const list = optList(top, "source_dirs");
  if (list === undefined) throw new ConfigError("source_dirs", "required: a list of directories to back up, e.g. [/etc, ./data]");
  if (list.length === 0) throw new ConfigError("source_dirs", "must list at least one directory");
  return [...new Set(stringItems(list, "source_dirs").map((dir) => resolvePath(dir, ctx)))];
}

function readStore(top: Section, ctx: Context): StoreConfig {
  const dir = optString(top, "store");
  const s3 = subsection(top, "s3");
  if (dir !== undefined && s3 !== undefined) throw new ConfigError("store", "give either store (a directory) or s3 (a bucket), not both");
  if (s3 !== undefined) return readS3(s3, ctx);
  if (dir === undefined) {
    throw new ConfigError("store", "required: give store (a directory, e.g. /var/backups/vaultik) or an s3 section");
  }
  return { kind: "fs", path: storeDirectory(dir, ctx) };
}

function storeDirectory(text: string, ctx: Context): string {
  if (text.startsWith("file:")) {
    try {
      return resolve(fileURLToPath(text));
    } catch (err) {
      throw new ConfigError("store", `${JSON.stringify(text)} is not a local file:/// URL`, { cause: err });
    }
  }
  const scheme = /^([a-z][a-z0-9+.-]*):\/\//i.exec(text);
  if (scheme) throw new ConfigError("store", `${scheme[1]}:// URLs are not supported here; use a directory, file:///…, or an s3 section`);
  return resolvePath(text, ctx);
}

function readS3(s: Section, ctx: Context): StoreConfig {
  return {
    kind: "s3",
    bucket: readBucket(s),
    prefix: (optString(s, "prefix") ?? "").replace(/^\/+|\/+$/g, ""),
    endpoint: optUrl(s, "endpoint", true),
    region: optString(s, "region"),
    accessKeyId: readSecret(s, "access_key_id", "AWS_ACCESS_KEY_ID", ctx),
    secretAccessKey: readSecret(s, "secret_access_key", "AWS_SECRET_ACCESS_KEY", ctx),
    forcePathStyle: optBool(s, "force_path_style"),
  };
}

function readBucket(s: Section): string {
  const bucket = optString(s, "bucket");
  if (bucket === undefined) throw new ConfigError(keyOf(s, "bucket"), "required when s3 is given");
  if (bucket.length < 3 || bucket.length > 63) {
    throw new ConfigError(keyOf(s, "bucket"), `must be 3 to 63 characters, got ${bucket.length} (${JSON.stringify(bucket)})`);
  }
  if (bucket.includes("/")) {
    throw new ConfigError(keyOf(s, "bucket"), `${JSON.stringify(bucket)} contains "/"; put the folder in s3.prefix`);
  }
  return bucket;
}

function readSchedule(top: Section): string | undefined {
  const expr = optString(top, "schedule");
  if (expr === undefined) return undefined;
  let job: Cron;
  try {
    job = new Cron(expr, { paused: true });
  } catch (err) {
    const reason = err instanceof Error ? err.message.replace(/^CronPattern:\s*/, "") : String(err);
    throw new ConfigError("schedule", `${JSON.stringify(expr)} is not a valid cron expression: ${reason}`, { cause: err });
  }
  const next = job.nextRun();
  job.stop();
  // Croner accepts patterns such as "0 0 31 2 *" (February 31st) that can never fire.
  if (next === null) throw new ConfigError("schedule", `${JSON.stringify(expr)} never matches any date`);
  return expr;
}

/**
 * The given path, else `$XDG_STATE_HOME/vaultik/<config name>-<hash12>.sqlite` (XDG base
 * directory spec). The hash covers the repository and the config file's absolute path: the file
 * name alone made `a/vaultik.yml` and `b/vaultik.yml` share one index and one lock, and a
 * config pointed at another repository must not deduplicate against blobs of the old one.
 */
function readIndexPath(top: Section, ctx: Context, configPath: string, store: StoreConfig): string {
  const given = optString(top, "index_path");
  if (given !== undefined) return resolvePath(given, ctx);
  const xdg = ctx.env["XDG_STATE_HOME"];
  // The spec says to ignore a relative XDG_STATE_HOME.
  const stateHome = xdg && isAbsolute(xdg) ? xdg : join(home(ctx), ".local", "state");
  const repository = store.kind === "fs" ? ["fs", store.path] : ["s3", store.endpoint ?? "", store.bucket, store.prefix];
  const hash = createHash("sha256").update(JSON.stringify({ repository, config: configPath })).digest("hex").slice(0, 12);
  return join(stateHome, "vaultik", `${basename(configPath, extname(configPath))}-${hash}.sqlite`);
}

function readChunkSize(top: Section): number {
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

function readBlobSizeLimit(top: Section, chunkSize: number): number {
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
function readIndexPrefix(top: Section): string {
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

function readRetention(top: Section): RetentionPolicy {
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

function readHooks(top: Section): HooksConfig | undefined {
  const s = subsection(top, "hooks");
  if (s === undefined) return undefined;
  return {
    preBackup: optString(s, "pre_backup"),
    postBackup: optString(s, "post_backup"),
    timeout: durationOr(s, "timeout", DEFAULTS.hookTimeout, 1),
  };
}

function readCommands(top: Section): CommandSource[] {
  const names = new Set<string>();
  const paths = new Set<string>();
  return (optList(top, "commands") ?? []).map((raw, i) => {
    const s = asSection(raw, `commands[${i}]`, "commands[]");
    const command = { name: reqString(s, "name"), run: reqString(s, "run"), path: snapshotPath(s) };
    if (names.has(command.name)) throw new ConfigError(keyOf(s, "name"), `${JSON.stringify(command.name)} is used by an earlier command`);
    if (paths.has(command.path)) throw new ConfigError(keyOf(s, "path"), `${JSON.stringify(command.path)} is used by an earlier command`);
    names.add(command.name);
    paths.add(command.path);
    return command;
  });
}

function snapshotPath(s: Section): string {
  const text = reqString(s, "path");
  const key = keyOf(s, "path");
  if (text.startsWith("/")) throw new ConfigError(key, `must be relative, e.g. "databases/app.dump", got ${JSON.stringify(text)}`);
  const segments = text.split("/").filter((seg) => seg !== "" && seg !== ".");
  if (segments.includes("..")) throw new ConfigError(key, `must not contain "..", got ${JSON.stringify(text)}`);
  if (segments.length === 0) throw new ConfigError(key, `must name a file, got ${JSON.stringify(text)}`);
  return segments.join("/");
}

function readStatus(top: Section, ctx: Context): StatusConfig | undefined {
  const s = subsection(top, "status");
  if (s === undefined) return undefined;
  const listen = reqString(s, "listen");
  return { listen, ...hostPort(listen, keyOf(s, "listen")), token: readSecret(s, "token", "VAULTIK_STATUS_TOKEN", ctx) };
}

function hostPort(text: string, key: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text);
  const port = Number(m?.[3]);
  if (!m || port > 65535) {
    throw new ConfigError(key, `expected host:port with a port from 0 to 65535, e.g. 127.0.0.1:9812 or [::1]:9812, got ${JSON.stringify(text)}`);
  }
  return { host: m[1] ?? m[2] ?? "", port };
}

function readAlerts(top: Section): AlertsConfig | undefined {
  const s = subsection(top, "alerts");
  if (s === undefined) return undefined;
  return {
    webhook: optUrl(s, "webhook", false),
    ntfy: optUrl(s, "ntfy", false),
    staleAfter: durationOr(s, "stale_after", DEFAULTS.staleAfter, 1),
    repeatAfter: durationOr(s, "repeat_after", DEFAULTS.alertRepeat, 1),
  };
}
