import { hostname as osHostname } from "node:os";
import { ConfigError } from "../errors.js";
import { sanitizeHost } from "../model/snapshot-id.js";
import type { Context } from "./context.js";
import { DEFAULTS } from "./keys.js";
import type { RetentionPolicy } from "../prune/policy.js";
import { readDatabases } from "./databases.js";
import type { AppConfig } from "./types.js";
import { readCommands, readHooks, readRetention, readSchedule, readSourceDirs } from "./validate.js";
import { durationOr, optList, optString, reqString, stringItems } from "./values.js";
import { asSection, keyOf, type Section, valueOf } from "./yaml.js";

// `apps:` and `hostname:`: several backup jobs in one config, sharing the repository, the index
// and the status server. Each app reads its section with the same readers as a config without
// apps, so a key added for one (databases) is one line here.
//
// Top-level defaults, the rule restic/kopia users expect from global vs per-path policies:
// - exclude: the top-level patterns apply to every app; an app's own are added to them.
// - schedule, backup_interval, full_scan_interval, min_time_between_run: each falls back to the
//   top level, except that an app setting backup_interval or full_scan_interval asked to be
//   watched, so it does not inherit a top-level schedule (which would silently override both).
// - hooks, retention: an app's section replaces the top-level one as a whole.
// - source_dirs, commands, databases: never inherited; at the top level beside apps: they are an error,
//   because every app backing up the same directories is never what was meant.

const WATCH_KEYS = ["backup_interval", "full_scan_interval"] as const;
const APP_NAME = /^[a-z0-9._-]{1,64}$/;

/** What `s` (the top level or one app) backs up: never inherited. */
export function readSources(s: Section, ctx: Context): Pick<AppConfig, "sourceDirs" | "commands" | "databases"> {
  const commands = readCommands(s);
  const databases = readDatabases(s, ctx, new Set(commands.map((c) => c.path)));
  // A container that only dumps a database has no directory to back up.
  return { sourceDirs: readSourceDirs(s, ctx, commands.length + databases.length > 0), commands, databases };
}

/** How and when `s` backs up; `defaults` is the top level when `s` is an app. */
export function readJob(s: Section, defaults?: Section): Omit<AppConfig, "name" | "host" | "sourceDirs" | "commands" | "databases"> {
  const own = (key: string) => (valueOf(s, key) !== undefined || !defaults ? s : defaults);
  const watched = WATCH_KEYS.some((k) => valueOf(s, k) !== undefined);
  const exclude = (sec: Section) => stringItems(optList(sec, "exclude") ?? [], keyOf(sec, "exclude"));
  return {
    exclude: defaults ? [...exclude(defaults), ...exclude(s)] : exclude(s),
    backupInterval: durationOr(own("backup_interval"), "backup_interval", DEFAULTS.backupInterval, 1),
    fullScanInterval: durationOr(own("full_scan_interval"), "full_scan_interval", DEFAULTS.fullScanInterval, 1),
    minTimeBetweenRun: durationOr(own("min_time_between_run"), "min_time_between_run", DEFAULTS.minTimeBetweenRun, 0),
    schedule: watched ? readSchedule(s) : readSchedule(own("schedule")),
    hooks: readHooks(own("hooks")),
    retention: readRetention(own("retention")),
  };
}

/** `hostname:`: as snapshot ids carry it, so it is refused rather than silently rewritten. */
export function readHostname(top: Section): string | undefined {
  return hostKey(top, "hostname");
}

function hostKey(s: Section, key: string): string | undefined {
  const text = optString(s, key);
  if (text !== undefined && sanitizeHost(text) !== text) {
    throw new ConfigError(keyOf(s, key), `${JSON.stringify(text)} is not a host name as snapshot ids have it (letters, digits, . and -, at most 64)`);
  }
  return text;
}

/** `apps:`, or undefined without it. Names and snapshot hosts must be unique. */
export function readApps(top: Section, ctx: Context, hostname: string | undefined): AppConfig[] | undefined {
  const list = optList(top, "apps");
  if (list === undefined) return undefined;
  if (list.length === 0) throw new ConfigError("apps", "must list at least one app (or leave apps: out)");
  for (const key of ["source_dirs", "commands", "databases"]) {
    if (valueOf(top, key) !== undefined) throw new ConfigError(key, "not allowed beside apps: give each app its own");
  }
  const names = new Set<string>();
  const hosts = new Set<string>();
  return list.map((raw, i) => {
    const s = asSection(raw, `apps[${i}]`, "apps[]");
    const name = reqString(s, "name");
    if (!APP_NAME.test(name)) throw new ConfigError(keyOf(s, "name"), `${JSON.stringify(name)}: use a-z, 0-9, ".", "_" and "-" (at most 64)`);
    if (names.has(name)) throw new ConfigError(keyOf(s, "name"), `${JSON.stringify(name)} is used by an earlier app`);
    // Ids carry only time and host, so the host is what tells apps apart without the private key.
    const host = hostKey(s, "host") ?? sanitizeHost(`${hostname ?? osHostname()}-${name}`);
    if (hosts.has(host)) throw new ConfigError(keyOf(s, "host"), `snapshot host ${JSON.stringify(host)} is used by an earlier app`);
    names.add(name);
    hosts.add(host);
    return { name, host, ...readSources(s, ctx), ...readJob(s, top) };
  });
}

/** The name a config without `apps:` runs as: in metrics labels, /status?app= and alerts. */
export const DEFAULT_APP = "default";

/** What a config backs up, as a list: its apps, or the whole config as the one app "default". */
export function appsOf(config: { apps?: AppConfig[]; hostname?: string } & Omit<AppConfig, "name" | "host">): AppConfig[] {
  if (config.apps) return config.apps;
  const { sourceDirs, exclude, commands, databases, backupInterval, fullScanInterval, minTimeBetweenRun, schedule, hooks, retention } = config;
  return [{
    name: DEFAULT_APP, host: config.hostname, sourceDirs, exclude, commands, databases, backupInterval, fullScanInterval, minTimeBetweenRun, schedule, hooks, retention,
  }];
}

/** The config as one app sees it: the shared keys with the app's job keys over them. */
export function appJob<C extends Omit<AppConfig, "name" | "host">>(config: C, app: AppConfig): C {
  const { name: _name, host: _host, ...job } = app;
  return { ...config, ...job };
}

/** `--app NAME` / `?app=NAME`: the app, or undefined. */
export function findApp(apps: readonly AppConfig[], name: string): AppConfig | undefined {
  return apps.find((a) => a.name === name);
}

/** Each app's retention by its snapshot host, for prune and serve; undefined without apps. */
export function appRetentions(config: { apps?: AppConfig[] }): Map<string, RetentionPolicy> | undefined {
  return config.apps && new Map(config.apps.map((a) => [a.host!, a.retention]));
}
