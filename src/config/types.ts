import type { DatabaseSettings } from "../backup/settings.js";
import type { X25519Recipient } from "../crypto/keys.js";
import type { RetentionPolicy } from "../prune/policy.js";
import type { StoreLocation } from "../store/location.js";

// What a checked config file is: paths absolute, durations in ms, sizes in bytes.

/** Where the repository lives; the CLI opens it with store/open.ts. */
export type StoreConfig = StoreLocation;

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

/** A database dumped into the snapshot (`databases:`). */
export type DatabaseSource = DatabaseSettings;

export interface StatusConfig {
  /** `listen` as written, e.g. "127.0.0.1:9812". */
  listen: string;
  host: string;
  /** 0 lets the system choose. */
  port: number;
  /** Bearer token the status server requires, if any. */
  token?: string;
}

/** How bad an alert is: `info` (recovered), `warning` (stale), `error` (failed, abandoned). */
export type AlertSeverity = "info" | "warning" | "error";

/** A channel that receives an HTTP POST: its URL (may embed a token: never print it whole). */
export interface AlertUrlChannel {
  url: string;
  /** Alerts below this severity are not sent here. */
  minSeverity: AlertSeverity;
}

/** `starttls`: plain connection upgraded, TLS required; `tls`: TLS from the start; `none`: no TLS. */
export type SmtpSecurity = "starttls" | "tls" | "none";

export interface EmailAlertConfig {
  host: string;
  port: number;
  security: SmtpSecurity;
  user?: string;
  /** Secret: never print it. */
  password?: string;
  from: string;
  /** At least one address. */
  to: string[];
  /** PEM certificate(s) to trust besides the system's, read from `tls_ca_file`. */
  tlsCa?: string;
  /** Accept any certificate (a self-signed relay on a trusted network). */
  tlsInsecure: boolean;
  minSeverity: AlertSeverity;
}

export interface AlertsConfig {
  /** Generic JSON POST (docs/ALERTS.md has its schema). */
  webhook?: AlertUrlChannel;
  /** ntfy topic URL, e.g. https://ntfy.sh/my-topic. */
  ntfy?: AlertUrlChannel;
  /** Slack incoming webhook. */
  slack?: AlertUrlChannel;
  /** Discord channel webhook. */
  discord?: AlertUrlChannel;
  email?: EmailAlertConfig;
  /** Default min_severity of every channel. */
  minSeverity: AlertSeverity;
  /** Alert when no backup has succeeded for this long, in ms. */
  staleAfter: number;
  /** While runs keep failing, remind this often (one alert per failing streak otherwise), in ms. */
  repeatAfter: number;
}

export interface ServeConfig {
  /** When a host's latest snapshot is too old, in ms; undefined when not set. */
  staleAfter?: number;
  /** Per host name, in ms. */
  hosts: Map<string, number>;
}

/** A checked config. Paths are absolute, durations in ms, sizes in bytes. */
export interface Config {
  /** Absolute path of the config file; undefined when the config came from the environment only. */
  path?: string;
  /** Its directory (the working directory without a file): relative paths resolve against it. */
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
  /** Memory a backup may use: fixes its worker threads and buffers (backup/memory-plan.ts). */
  memoryLimit: number;
  /** Repository folder for snapshot metadata: no leading "/", exactly one trailing "/". */
  indexPrefix: string;
  /** Which snapshots prune keeps; empty when the file has no `retention`. */
  retention: RetentionPolicy;
  hooks?: HooksConfig;
  commands: CommandSource[];
  databases: DatabaseSource[];
  status?: StatusConfig;
  alerts?: AlertsConfig;
  serve?: ServeConfig;
  /** Upload bandwidth limit in bytes per second. */
  limitUpload?: number;
  /** `hostname:`: replaces os.hostname() in snapshot ids, alerts and status (issue 19). */
  hostname?: string;
  /** `apps:`: several jobs sharing this repository and index; absent = the config is one job. */
  apps?: AppConfig[];
}

/** One job of a config (config/apps.ts): what it backs up, when, and as which snapshot host. */
export interface AppConfig {
  /** [a-z0-9._-]; "default" for a config without `apps:`. */
  name: string;
  /** Host in its snapshot ids; undefined = os.hostname(). */
  host?: string;
  sourceDirs: string[];
  exclude: string[];
  commands: CommandSource[];
  databases: DatabaseSource[];
  backupInterval: number;
  fullScanInterval: number;
  minTimeBetweenRun: number;
  schedule?: string;
  hooks?: HooksConfig;
  retention: RetentionPolicy;
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
  /** Older environment variable used when neither the key, its `_file` twin nor its VAULTIK_ variable is given. */
  env?: string;
  description: string;
  /**
   * How its VAULTIK_ variable's text becomes a value (config/env.ts): "string" when absent.
   * Keys with sub-keys need none: a section's keys have a variable each, a list of mappings or
   * a map of names takes YAML/JSON flow text.
   */
  kind?: ConfigKeyKind;
}

/**
 * `list`: comma-separated; `count`: a whole number; `boolean`: true or false; `channel`: an alert
 * channel, a URL or (starting with "{") YAML flow text such as `{url: …, min_severity: error}`.
 */
export type ConfigKeyKind = "string" | "list" | "count" | "boolean" | "channel";
