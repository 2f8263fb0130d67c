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
 * How every URL alert channel may be written. The mapping's two keys are read by config/alerts.ts
 * and are not rows of their own: a channel stays one value key, so its VAULTIK_ variable is the
 * URL and overrides the file's channel whichever form the file uses.
 */
const CHANNEL_FORMS = "; a URL, or a mapping {url, min_severity} (info, warning or error; default alerts.min_severity)";

/**
 * Every key the config file accepts, with its default and a one-line description. Parsing
 * checks names against this list, so a key documented here is a key that is accepted.
 */
export const CONFIG_KEYS: readonly ConfigKeyInfo[] = [
  { key: "age_recipient", kind: "list", required: true, env: "VAULTIK_AGE_RECIPIENT", description: "age public key (`age1…`) that backups are encrypted to; a string or a list of several" },
  { key: "age_recipient_file", env: "VAULTIK_AGE_RECIPIENT_FILE", description: "file of `age1…` lines (`#` comments allowed), instead of `age_recipient`" },
  { key: "source_dirs", kind: "list", required: true, description: "list of directories to back up (may be left out when there are `commands` or `databases`); relative paths resolve against the config file's directory (the working directory when there is no file). Each must exist and be a directory (not a symlink) when the backup starts, else the run fails before anything is uploaded (exit 1); an empty directory is fine" },
  { key: "exclude", kind: "list", default: "[]", description: "gitignore-style patterns of paths to skip: `*.log` (any depth), `node_modules/` (directories), `/build` (top of every source dir), `!keep.log`; an absolute path inside a source dir is anchored there (a `/…` pattern that names no path inside a source dir is the top-of-source-dir form)" },
  { key: "store", description: "local repository: a directory or `file:///` URL (give `store` or `s3`, not both; a variable for one replaces the file's other)" },
  { key: "s3", description: "S3-compatible repository (give `store` or `s3`, not both); its variables count only once `VAULTIK_S3_BUCKET` or the file's `s3` section is there" },
  { key: "s3.endpoint", description: "http(s) URL of a non-AWS service (MinIO, Garage, R2, B2, Ceph); omit for AWS. `VAULTIK_S3_ENDPOINT` is also what the bucket commands (`snapshots`, `restore` …) read" },
  { key: "s3.bucket", required: true, description: "bucket name, 3 to 63 characters" },
  { key: "s3.prefix", default: '""', description: "folder inside the bucket; slashes at either end are dropped" },
  { key: "s3.access_key_id", env: "AWS_ACCESS_KEY_ID", description: "access key id" },
  { key: "s3.access_key_id_file", env: "AWS_ACCESS_KEY_ID_FILE", description: "file holding the access key id, instead of access_key_id" },
  { key: "s3.secret_access_key", env: "AWS_SECRET_ACCESS_KEY", description: "secret access key (a `_file` key or `*_FILE` variable reads it from a file, as Docker secrets are passed)" },
  { key: "s3.secret_access_key_file", env: "AWS_SECRET_ACCESS_KEY_FILE", description: "file holding the secret access key, instead of secret_access_key" },
  { key: "s3.region", default: "us-east-1", description: "bucket region; unset, `AWS_REGION`, then `AWS_DEFAULT_REGION`, then `us-east-1`" },
  { key: "s3.force_path_style", kind: "boolean", default: "true with an endpoint", description: "address buckets as `endpoint/bucket` (MinIO and most self-hosted services) rather than `bucket.endpoint`" },
  { key: "backup_interval", default: DEFAULTS.backupInterval, description: "daemon: how often to back up when something changed" },
  { key: "full_scan_interval", default: DEFAULTS.fullScanInterval, description: "daemon: how often to rescan every file instead of trusting the file watcher" },
  { key: "min_time_between_run", default: DEFAULTS.minTimeBetweenRun, description: "daemon: shortest gap between two backups, however many changes arrive" },
  { key: "schedule", description: 'daemon: cron expression for scheduled backups instead of intervals, e.g. `"0 2 * * *"`' },
  { key: "index_path", default: "$XDG_STATE_HOME/vaultik/<config name>-<hash12>.sqlite (~/.local/state without XDG_STATE_HOME)", description: "local SQLite index of what has been uploaded (state lives beside it in `<index_path>.d/`). The hash is of the repository (directory, or endpoint + bucket + prefix) and the config file's absolute path (`env` without a file, so the name is `env-<hash12>.sqlite`), so two configs never share an index or its lock, and pointing a config at another repository starts a new index. Created 0600 in a 0700 folder whatever the umask (it lists every backed-up path). An index at the old default `<config name>.sqlite` is no longer read: the first backup after upgrading re-reads every file; delete the old file" },
  { key: "chunk_size", default: DEFAULTS.chunkSize, description: "target average chunk size, 256 B to 16 MiB; min is ¼, max 4× this. Changing it stops deduplication against earlier backups" },
  { key: "blob_size_limit", default: DEFAULTS.blobSizeLimit, description: "size at which a blob is closed and uploaded; at least 1 MiB and 4 × chunk_size (default: 16 MiB or 4 × chunk_size, whichever is larger)" },
  { key: "memory_limit", default: DEFAULTS.memoryLimit, description: "memory a backup (and a `restore --config`) may use, at least 128 MiB. It fixes how many pack worker threads run: each costs ~88 MiB at its peak besides ~176 MiB for the rest, so the default runs one, `512MiB` three. More cores only help while they fit; `--json` reports `workers` (and `workersAsked` when the limit allowed fewer)" },
  { key: "index_prefix", default: DEFAULTS.indexPrefix, description: "repository folder for snapshot databases" },
  { key: "retention", description: "which snapshots prune keeps; a count of 0 turns its rule off" },
  { key: "retention.keep_last", kind: "count", description: "keep the newest N snapshots" },
  { key: "retention.keep_hourly", kind: "count", description: "keep the newest snapshot of each of the last N hours that have one" },
  { key: "retention.keep_daily", kind: "count", description: "keep the newest snapshot of each of the last N days that have one" },
  { key: "retention.keep_weekly", kind: "count", description: "keep the newest snapshot of each of the last N ISO weeks that have one" },
  { key: "retention.keep_monthly", kind: "count", description: "keep the newest snapshot of each of the last N months that have one" },
  { key: "retention.keep_yearly", kind: "count", description: "keep the newest snapshot of each of the last N years that have one" },
  { key: "retention.keep_within", description: "keep every snapshot younger than this duration, e.g. 30d" },
  { key: "hooks", description: "daemon and `backup`: shell commands run around each backup" },
  { key: "hooks.pre_backup", description: "shell command run before each backup" },
  { key: "hooks.post_backup", description: "shell command run after each backup" },
  { key: "hooks.timeout", default: DEFAULTS.hookTimeout, description: "how long a hook may run" },
  { key: "commands", default: "[]", description: "commands whose standard output is stored as a file in the snapshot, e.g. a database dump" },
  { key: "commands[].name", required: true, description: "unique name of the command" },
  { key: "commands[].run", required: true, description: "shell command line whose standard output is stored" },
  { key: "commands[].path", required: true, description: 'where the output appears in the snapshot, e.g. "databases/app.dump"' },
  { key: "databases", default: "[]", description: "databases dumped into each snapshot by their own tools, streamed; see [Databases](#databases)" },
  { key: "databases[].type", required: true, description: "`postgres`, `mysql`, `mariadb`, `redis`, `sqlite` or `mongodb`" },
  { key: "databases[].name", description: "unique name for logs and errors (default: type-database, e.g. `postgres-app`)" },
  { key: "databases[].path", description: 'where the dump appears in the snapshot, e.g. `/databases/app.pgdump` (default: `databases/<name>` with the format\'s extension)' },
  { key: "databases[].url", description: "connection URL, e.g. `postgresql://app@db:5432/app`; a password in it is passed in the tool's environment, never its arguments" },
  { key: "databases[].host", description: "server host name or address (default: the tool's, usually the local socket)" },
  { key: "databases[].port", description: "server port" },
  { key: "databases[].user", description: "user to connect as" },
  { key: "databases[].password", description: "password, passed in the tool's environment (`PGPASSWORD`, `MYSQL_PWD`, `REDISCLI_AUTH`) or on mongodump's stdin" },
  { key: "databases[].password_file", description: "file holding the password, instead of `password`" },
  { key: "databases[].database", description: "database to dump, or `all` (`pg_dumpall`, `--all-databases`); required for postgres, mysql and mariadb" },
  { key: "databases[].socket", description: "unix socket: postgres its directory, mysql, mariadb and redis the socket file" },
  { key: "databases[].file", description: "sqlite: the database file, copied with SQLite's online backup while the application writes" },
  { key: "databases[].schedule", description: 'cron expression: dump only when one of its times has come since the last dump, e.g. `"0 3 * * *"`; other snapshots carry the last dump forward (default: every backup)' },
  { key: "status", description: "daemon: HTTP status and metrics server" },
  { key: "status.listen", required: true, description: "host:port to listen on, e.g. 127.0.0.1:9812 or [::1]:9812" },
  { key: "status.token", env: "VAULTIK_STATUS_TOKEN", description: "token clients must send, as `Authorization: Bearer <token>` or `X-API-Key: <token>`" },
  { key: "status.token_file", env: "VAULTIK_STATUS_TOKEN_FILE", description: "file holding the token, instead of token" },
  { key: "alerts", description: "daemon and `vaultik serve`: where to report failed or stale backups, and how bad an alert must be for each channel (docs/ALERTS.md)" },
  { key: "alerts.webhook", kind: "channel", description: `http(s) URL that receives a JSON POST (schema in docs/ALERTS.md)${CHANNEL_FORMS}` },
  { key: "alerts.ntfy", kind: "channel", description: `ntfy topic URL, e.g. https://ntfy.sh/my-topic${CHANNEL_FORMS}` },
  { key: "alerts.slack", kind: "channel", description: `Slack incoming-webhook URL (https://hooks.slack.com/services/…)${CHANNEL_FORMS}` },
  { key: "alerts.discord", kind: "channel", description: `Discord channel webhook URL (https://discord.com/api/webhooks/…)${CHANNEL_FORMS}` },
  { key: "alerts.email", description: "send alerts by email over SMTP" },
  { key: "alerts.email.host", required: true, description: "SMTP server host name" },
  { key: "alerts.email.port", kind: "count", default: "465 with security tls, 25 with none, else 587", description: "SMTP server port" },
  { key: "alerts.email.security", default: "tls on port 465, else starttls", description: "starttls (upgrade required, never falls back to plain text), tls (TLS from the start) or none (local relay; no password allowed)" },
  { key: "alerts.email.user", description: "SMTP login; needs a password" },
  { key: "alerts.email.password", description: "SMTP password" },
  { key: "alerts.email.password_file", description: "file holding the SMTP password, instead of password" },
  { key: "alerts.email.from", required: true, description: 'sender address, e.g. "vaultik <backups@example.com>"' },
  { key: "alerts.email.to", kind: "list", required: true, description: "recipient address, or a list of them" },
  { key: "alerts.email.tls_ca_file", description: "PEM file of the CA (or self-signed certificate) that signed the server's certificate, trusted besides the system's" },
  { key: "alerts.email.tls_insecure", kind: "boolean", default: "false", description: "true to accept any server certificate (still encrypted, but open to a man in the middle); prefer tls_ca_file" },
  { key: "alerts.email.min_severity", default: "alerts.min_severity", description: "least severity sent by email: info, warning or error" },
  { key: "alerts.min_severity", default: "info", description: "least severity a channel sends unless it says otherwise: info (also recoveries), warning (also stale), error (failures only)" },
  { key: "alerts.stale_after", default: DEFAULTS.staleAfter, description: "alert when no backup has succeeded for this long" },
  { key: "alerts.repeat_after", default: DEFAULTS.alertRepeat, description: "while backups keep failing, send a reminder this often (one alert per failing streak otherwise)" },
  { key: "serve", description: "what `vaultik serve` (the fleet dashboard on the recovery machine) expects of this repository's hosts" },
  { key: "serve.stale_after", default: DEFAULTS.staleAfter, description: "a host whose latest snapshot is older than this is stale (red, and alerted); --stale-after overrides it" },
  { key: "serve.hosts", description: "per-host settings, by host name as in snapshot ids, e.g. hosts: {laptop: {stale_after: 8d}}" },
  { key: "serve.hosts.*.stale_after", description: "this host's stale_after, over serve.stale_after and --stale-after" },
  { key: "limit_upload", description: "upload bandwidth limit, e.g. `10MiB/s`" },
  // issue 19, apps: the per-app rows are derived below from the top-level ones.
  { key: "hostname", description: "host name in snapshot ids, alerts and status instead of the machine's; letters, digits, . and -" },
  { key: "apps", description: "several backup jobs sharing this repository, index and status server (see \"Several apps\")" },
  { key: "apps[].name", required: true, description: "unique name of the app: a-z, 0-9, ., _ and -" },
  { key: "apps[].host", description: "host in the app's snapshot ids (default `<hostname>-<name>`)" },
];

/** Keys an app of `apps:` may set (config/apps.ts); their rows repeat the top-level ones. */
export const APP_JOB_KEYS: readonly string[] = ["source_dirs", "exclude", "commands", "databases", "schedule", "backup_interval", "full_scan_interval", "min_time_between_run", "hooks", "retention"];

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
