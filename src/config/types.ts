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

export interface ServeConfig {
  /** When a host's latest snapshot is too old, in ms; undefined when not set. */
  staleAfter?: number;
  /** Per host name, in ms. */
  hosts: Map<string, number>;
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
  /** Memory a backup may use: fixes its worker threads and buffers (backup/memory-plan.ts). */
  memoryLimit: number;
  /** Repository folder for snapshot metadata: no leading "/", exactly one trailing "/". */
  indexPrefix: string;
  /** Which snapshots prune keeps; empty when the file has no `retention`. */
  retention: RetentionPolicy;
  hooks?: HooksConfig;
  commands: CommandSource[];
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
  /** Environment variable used when neither the key nor its `_file` twin is given. */
  env?: string;
  description: string;
}
