import { basename, extname } from "node:path";
import { DATABASE_TYPES, type DatabaseType } from "../backup/settings.js";
import { ConfigError } from "../errors.js";
import { type Context, resolvePath } from "./context.js";
import { readSecret } from "./secrets.js";
import type { DatabaseSource } from "./types.js";
import { readSchedule, relativeSnapshotPath } from "./validate.js";
import { eitherNotBoth, optCount, optList, optString, reqString } from "./values.js";
import { asSection, keyOf, type Section } from "./yaml.js";

// `databases:`: each entry a database dumped into the snapshot by its own tool (backup/databases/).
// A connection is a `url` or its parts; a password in the URL is taken out of it here, so that
// the URL the tool receives on its command line carries none (argv is visible to every user of
// the machine in /proc). Errors never quote a URL: it may hold that password.

const URL_SCHEMES: Record<DatabaseType, readonly string[]> = {
  postgres: ["postgres:", "postgresql:"],
  mysql: ["mysql:", "mariadb:"],
  mariadb: ["mariadb:", "mysql:"],
  redis: ["redis:"],
  mongodb: ["mongodb:", "mongodb+srv:"],
  sqlite: [],
};

/** The file name a dump gets when no `path` is given. */
const EXTENSIONS: Record<DatabaseType, string> = {
  postgres: ".pgdump",
  mysql: ".sql",
  mariadb: ".sql",
  redis: ".rdb",
  sqlite: ".sqlite",
  mongodb: ".archive",
};

const CONNECTION_KEYS = ["host", "port", "user", "database", "socket"] as const;

/**
 * Reads `databases:`. `taken` holds the snapshot paths already used (by `commands:`); each
 * database's path is added to it, so paths stay unique across both lists.
 */
export function readDatabases(top: Section, ctx: Context, taken: Set<string>): DatabaseSource[] {
  const names = new Set<string>();
  return (optList(top, "databases") ?? []).map((raw, i) => {
    const s = asSection(raw, `databases[${i}]`, "databases[]");
    const db = readDatabase(s, ctx);
    if (names.has(db.name)) throw new ConfigError(keyOf(s, "name"), `${JSON.stringify(db.name)} is used by an earlier database`);
    if (taken.has(db.path)) throw new ConfigError(keyOf(s, "path"), `${JSON.stringify(db.path)} is used by an earlier command or database`);
    names.add(db.name);
    taken.add(db.path);
    return db;
  });
}

function readDatabase(s: Section, ctx: Context): DatabaseSource {
  const type = readType(s);
  const file = type === "sqlite" ? readSqliteFile(s, ctx) : undefined;
  const conn: Connection & { file?: string } = file === undefined ? readConnection(s, type, ctx) : { file };
  const database = conn.database;
  const what = file !== undefined ? basename(file, extname(file)) : database ?? (type === "redis" ? undefined : "all");
  const name = optString(s, "name") ?? (what === undefined ? type : `${type}-${what}`);
  const pathText = optString(s, "path");
  // pg_dumpall writes SQL, not pg_dump's custom format.
  const ext = type === "postgres" && database === "all" ? ".sql" : EXTENSIONS[type];
  // The issue's own example is `/databases/app.db`: a leading "/" means the snapshot's root.
  const path = relativeSnapshotPath(pathText === undefined ? `databases/${name}${ext}` : pathText.replace(/^\/+/, ""), keyOf(s, "path"));
  const schedule = readSchedule(s);
  return { name, type, path, ...conn, ...(schedule === undefined ? {} : { schedule }) };
}

function readType(s: Section): DatabaseType {
  const text = reqString(s, "type");
  const type = DATABASE_TYPES.find((t) => t === text);
  if (type === undefined) throw new ConfigError(keyOf(s, "type"), `must be one of ${DATABASE_TYPES.join(", ")}, got ${JSON.stringify(text)}`);
  return type;
}

function readSqliteFile(s: Section, ctx: Context): string {
  for (const key of ["url", ...CONNECTION_KEYS, "password", "password_file"]) {
    if (optString(s, key) !== undefined || (key === "port" && s.values[key] !== undefined)) {
      throw new ConfigError(keyOf(s, key), "does not apply to sqlite: give the database's file");
    }
  }
  return resolvePath(reqString(s, "file"), ctx);
}

type Connection = Omit<DatabaseSource, "name" | "type" | "path" | "file">;

function readConnection(s: Section, type: DatabaseType, ctx: Context): Connection {
  if (optString(s, "file") !== undefined) throw new ConfigError(keyOf(s, "file"), "applies to sqlite only");
  const password = readSecretOnly(s, ctx);
  const url = optString(s, "url");
  const conn: Connection = url === undefined ? readParts(s) : fromUrl(s, type, url, password);
  const withPassword = { ...conn, password: conn.password ?? password };
  if (type === "redis" && withPassword.database !== undefined) {
    throw new ConfigError(keyOf(s, "database"), "does not apply to redis: its dump holds every database");
  }
  if ((type === "postgres" || type === "mysql" || type === "mariadb") && withPassword.database === undefined) {
    throw new ConfigError(keyOf(s, "database"), `required for ${type}: a database name, or all`);
  }
  if (type === "mongodb" && withPassword.database === "all") return { ...withPassword, database: undefined };
  if (withPassword.database?.startsWith("-")) throw new ConfigError(keyOf(s, "database"), "must not start with -");
  return withPassword;
}

/** `password` or `password_file`, with no environment fallback: each database has its own. */
function readSecretOnly(s: Section, ctx: Context): string | undefined {
  if (optString(s, "password") === undefined && optString(s, "password_file") === undefined) return undefined;
  // The fallback variable is never consulted: one of the two keys is given.
  return readSecret(s, "password", "VAULTIK_DATABASE_PASSWORD", ctx);
}

function readParts(s: Section): Connection {
  const port = optCount(s, "port");
  if (port !== undefined && (port < 1 || port > 65535)) throw new ConfigError(keyOf(s, "port"), `must be from 1 to 65535, got ${port}`);
  return {
    host: optString(s, "host"),
    port,
    user: optString(s, "user"),
    database: optString(s, "database"),
    socket: optString(s, "socket"),
  };
}

/**
 * The URL's parts. postgres and mongodb keep the URL itself (it may carry options such as
 * sslmode), minus its password; mysqldump and redis-cli take parts. A database named by the
 * URL and by `database` as well is an error; `database: all` with a URL naming none is fine.
 */
function fromUrl(s: Section, type: DatabaseType, text: string, password: string | undefined): Connection {
  const key = keyOf(s, "url");
  for (const part of CONNECTION_KEYS) {
    if (part !== "database" && s.values[part] !== undefined) throw eitherNotBoth(key, part);
  }
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ConfigError(key, `is not a valid URL (expected e.g. ${URL_SCHEMES[type][0]}//user@host:port/name)`);
  }
  if (!URL_SCHEMES[type].includes(url.protocol)) {
    throw new ConfigError(key, `expected a ${URL_SCHEMES[type].join(" or ")} URL for ${type}, got a ${url.protocol} URL`);
  }
  const inUrl = url.password === "" ? undefined : decodeURIComponent(url.password);
  if (inUrl !== undefined && password !== undefined) throw new ConfigError(key, "holds a password and password or password_file is given too: give one");
  url.password = "";
  const pathName = decodeURIComponent(url.pathname.replace(/^\/+/, ""));
  const fromKey = optString(s, "database");
  if (pathName !== "" && fromKey !== undefined) throw eitherNotBoth(keyOf(s, "database"), "a database in url");
  const database = pathName === "" ? fromKey : pathName;
  if (type === "postgres" || type === "mongodb") {
    // The tool takes the database from the URL; pg_dumpall takes none (it names where to connect).
    url.pathname = database === undefined || database === "all" ? "" : `/${encodeURIComponent(database)}`;
    return { url: url.toString(), database, password: inUrl };
  }
  if (type === "redis") {
    if (fromKey !== undefined) throw new ConfigError(keyOf(s, "database"), "does not apply to redis: its dump holds every database");
    // redis://host:port/N selects a database, which an RDB dump does not: it holds them all.
    return { host: url.hostname || undefined, port: url.port === "" ? undefined : Number(url.port), user: decodeURIComponent(url.username) || undefined, password: inUrl };
  }
  return {
    host: url.hostname || undefined,
    port: url.port === "" ? undefined : Number(url.port),
    user: decodeURIComponent(url.username) || undefined,
    database,
    password: inUrl,
  };
}
