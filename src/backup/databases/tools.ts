import { accessSync, constants } from "node:fs";
import { delimiter, join } from "node:path";
import type { DatabaseSettings } from "../settings.js";

// How each database's dump tool is called: its argv, and where its password goes. The password
// never goes on the command line (any user of the machine reads argv in /proc): PostgreSQL,
// MariaDB and redis-cli take it from the environment, mongodump from its stdin.

export interface ToolCall {
  argv: string[];
  /** Variables added to the tool's environment. */
  env: Record<string, string>;
  /** Written to the tool's stdin. */
  input?: string;
}

/** `--flag=value` when value is given. */
function opt(flag: string, value: string | number | undefined): string[] {
  return value === undefined ? [] : [`${flag}=${value}`];
}

function secretEnv(name: string, password: string | undefined): Record<string, string> {
  return password === undefined ? {} : { [name]: password };
}

export function postgresCall(db: DatabaseSettings): ToolCall {
  // A socket directory is what libpq takes as its host.
  const conn = db.url !== undefined ? [`--dbname=${db.url}`] : [...opt("--host", db.socket ?? db.host), ...opt("--port", db.port), ...opt("--username", db.user)];
  const env = secretEnv("PGPASSWORD", db.password);
  // --no-password: fail at once instead of waiting for a password prompt nobody answers.
  if (db.database === "all") return { argv: ["pg_dumpall", "--no-password", ...conn], env };
  const dbname = db.url === undefined ? opt("--dbname", db.database) : [];
  // Uncompressed: pg_dump's own compression makes every dump look new to deduplication, and the
  // chunks are compressed with zstd anyway.
  return { argv: ["pg_dump", "--format=custom", "--compress=0", "--no-password", ...conn, ...dbname], env };
}

export function mysqlCall(db: DatabaseSettings, path: string | undefined): ToolCall {
  // MariaDB ships mariadb-dump (and, for now, mysqldump as its alias); MySQL only mysqldump.
  const names = db.type === "mariadb" ? ["mariadb-dump", "mysqldump"] : ["mysqldump", "mariadb-dump"];
  const tool = names.find((name) => onPath(name, path)) ?? names[0]!;
  return {
    argv: [
      tool,
      "--single-transaction",
      "--routines",
      "--events",
      ...opt("--host", db.host),
      ...opt("--port", db.port),
      ...opt("--user", db.user),
      ...opt("--socket", db.socket),
      ...(db.database === "all" ? ["--all-databases"] : [db.database!]),
    ],
    env: secretEnv("MYSQL_PWD", db.password),
  };
}

export function redisCall(db: DatabaseSettings): ToolCall {
  const where = db.socket !== undefined ? ["-s", db.socket] : [...(db.host === undefined ? [] : ["-h", db.host]), ...(db.port === undefined ? [] : ["-p", String(db.port)])];
  return {
    argv: ["redis-cli", ...where, ...(db.user === undefined ? [] : ["--user", db.user]), "--rdb", "-"],
    env: secretEnv("REDISCLI_AUTH", db.password),
  };
}

export function mongodbCall(db: DatabaseSettings): ToolCall {
  const conn = db.url !== undefined
    ? [`--uri=${db.url}`]
    : [...opt("--host", db.host), ...opt("--port", db.port), ...opt("--username", db.user), ...opt("--db", db.database)];
  // With a user and no --password, mongodump reads the password from stdin when it is no terminal.
  return { argv: ["mongodump", "--archive", ...conn], env: {}, input: db.password === undefined ? undefined : `${db.password}\n` };
}

/** Whether `name` is an executable in one of PATH's directories. */
function onPath(name: string, path: string | undefined): boolean {
  return (path ?? "").split(delimiter).some((dir) => {
    if (dir === "") return false;
    try {
      accessSync(join(dir, name), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}
