import type { ConfigKeyInfo } from "./types.js";

// The key table: what the config file accepts, its defaults, and the README's reference.

export const DEFAULTS = {
  backupInterval: "1h",
  fullScanInterval: "24h",
  minTimeBetweenRun: "15m",
  chunkSize: "1MiB",
  blobSizeLimit: "16MiB",
  memoryLimit: "256MiB",
  indexPrefix: "index/",
  hookTimeout: "10m",
  staleAfter: "26h",
  alertRepeat: "24h",
} as const;

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
  { key: "memory_limit", default: DEFAULTS.memoryLimit, description: "memory a backup (and a restore --config) may use, at least 128 MiB; it fixes how many worker threads run (more cores only help while they fit)" },
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
  { key: "serve", description: "what `vaultik serve` (the fleet dashboard on the recovery machine) expects of this repository's hosts" },
  { key: "serve.stale_after", default: DEFAULTS.staleAfter, description: "a host whose latest snapshot is older than this is stale (red, and alerted); --stale-after overrides it" },
  { key: "serve.hosts", description: "per-host settings, by host name as in snapshot ids, e.g. hosts: {laptop: {stale_after: 8d}}" },
  { key: "serve.hosts.*.stale_after", description: "this host's stale_after, over serve.stale_after and --stale-after" },
  { key: "limit_upload", description: "upload bandwidth limit, e.g. 10MiB/s" },
  // issue 19, apps: the per-app rows are derived below from the top-level ones.
  { key: "hostname", description: "host name in snapshot ids, alerts and status instead of the machine's; letters, digits, . and -" },
  { key: "apps", description: "several backup jobs sharing this repository, index and status server (see \"Several apps\")" },
  { key: "apps[].name", required: true, description: "unique name of the app: a-z, 0-9, ., _ and -" },
  { key: "apps[].host", description: "host in the app's snapshot ids (default <hostname>-<name>)" },
];

/** Keys an app of `apps:` may set (config/apps.ts); their rows repeat the top-level ones. */
export const APP_JOB_KEYS: readonly string[] = ["source_dirs", "exclude", "commands", "schedule", "backup_interval", "full_scan_interval", "min_time_between_run", "hooks", "retention"];

// Appended at load rather than written out: a key added above for jobs gets its app row for free.
for (const info of [...CONFIG_KEYS]) {
  const root = info.key.split(/[.[]/)[0] ?? "";
  if (!APP_JOB_KEYS.includes(root)) continue;
  const { env: _env, default: _default, ...rest } = info;
  (CONFIG_KEYS as ConfigKeyInfo[]).push({ ...rest, key: `apps[].${info.key}`, description: `per app: ${info.description}` });
}

/** The documented keys, for generating the README's config reference. */
export function describeConfigKeys(): readonly ConfigKeyInfo[] {
  return CONFIG_KEYS;
}
