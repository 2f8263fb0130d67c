import type { X25519Recipient } from "../crypto/keys.js";

// What a backup needs to know, and nothing more: backup/ sits below the config file's reader,
// so it names its own inputs. A loaded Config has all of these fields under the same names and
// is passed as is (test/backup-job.test.ts holds that as a compile-time fact).

/** The settings one backup run uses (backup/run.ts). */
export interface BackupSettings {
  /** Public keys every blob and snapshot is encrypted to. */
  readonly recipients: readonly X25519Recipient[];
  /** Directories to back up, absolute. */
  readonly sourceDirs: readonly string[];
  /** gitignore-style patterns of paths to skip. */
  readonly exclude: readonly string[];
  /** Target average chunk size. */
  readonly chunkSize: number;
  /** Size at which a blob is closed and uploaded. */
  readonly blobSizeLimit: number;
  /** Memory a backup may use (memory-plan.ts); default 256 MiB. */
  readonly memoryLimit?: number;
  /** Local SQLite index of what has been uploaded; its lock and work directory sit beside it. */
  readonly indexPath: string;
  /** Repository folder for snapshot metadata. */
  readonly indexPrefix: string;
}

export interface HookSettings {
  /** Shell command run before each backup; its failure aborts the run. */
  readonly preBackup?: string;
  /** Shell command run after each backup, whatever its outcome. */
  readonly postBackup?: string;
  /** How long a hook may run, in ms. */
  readonly timeout: number;
}

/** A command whose standard output is stored in the snapshot as one file. */
export interface CommandSettings {
  /** Unique name, for logs and errors. */
  readonly name: string;
  /** Shell command line. May hold credentials: never print it. */
  readonly run: string;
  /** Where the output appears in the snapshot: relative, "/"-separated. */
  readonly path: string;
}

export const DATABASE_TYPES = ["postgres", "mysql", "mariadb", "redis", "sqlite", "mongodb"] as const;
export type DatabaseType = (typeof DATABASE_TYPES)[number];

/** A database dumped into the snapshot as one file (backup/databases/). */
export interface DatabaseSettings {
  /** Unique among databases, for logs and errors. */
  readonly name: string;
  readonly type: DatabaseType;
  /** Where the dump appears in the snapshot: relative, "/"-separated. */
  readonly path: string;
  /** Connection URL (postgres, mongodb) with its password taken out into `password`. */
  readonly url?: string;
  readonly host?: string;
  readonly port?: number;
  readonly user?: string;
  /** Passed in the tool's environment (or stdin), never its argv. Never print it. */
  readonly password?: string;
  /** A database name, or "all" (postgres, mysql, mariadb); absent for redis. */
  readonly database?: string;
  /** Unix socket: postgres its directory, mysql/mariadb/redis the socket file. */
  readonly socket?: string;
  /** The database file (sqlite), absolute. */
  readonly file?: string;
  /** Cron expression: dumped only when one of its times has come since the last dump. */
  readonly schedule?: string;
}

/** A backup with what surrounds it (backup/job.ts): hooks, command and database sources. */
export interface JobSettings extends BackupSettings {
  readonly hooks?: HookSettings;
  readonly commands: readonly CommandSettings[];
  readonly databases?: readonly DatabaseSettings[];
}
