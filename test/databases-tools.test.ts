import { chmod, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { DatabaseSettings } from "../src/backup/settings.js";
import { mongodbCall, mysqlCall, postgresCall, redisCall } from "../src/backup/databases/tools.js";
import { redactor } from "../src/backup/databases/redact.js";
import { useTempDirs } from "./helpers/temp.js";

// How each dump tool is called: the flags the README promises, and the password only ever in
// the environment or on stdin, never in argv (readable by every user in /proc).

const PW = "tool-Secret-x9";
const tempDir = useTempDirs("vaultik-dbtools-");

function db(extra: Partial<DatabaseSettings>): DatabaseSettings {
  return { name: "n", type: "postgres", path: "p", password: PW, ...extra };
}

describe("dump tool calls", () => {
  it("postgres: pg_dump custom format uncompressed, pg_dumpall for all; PGPASSWORD", () => {
    expect(postgresCall(db({ host: "db", port: 5433, user: "u", database: "app" }))).toEqual({
      argv: ["pg_dump", "--format=custom", "--compress=0", "--no-password", "--host=db", "--port=5433", "--username=u", "--dbname=app"],
      env: { PGPASSWORD: PW },
    });
    expect(postgresCall(db({ socket: "/run/postgresql", database: "all" }))).toEqual({
      argv: ["pg_dumpall", "--no-password", "--host=/run/postgresql"],
      env: { PGPASSWORD: PW },
    });
    expect(postgresCall(db({ url: "postgresql://u@h/app", database: "app", password: undefined })).argv).toEqual([
      "pg_dump", "--format=custom", "--compress=0", "--no-password", "--dbname=postgresql://u@h/app",
    ]);
  });

  it("mysql/mariadb: the type's own tool first, the other when it is all there is; MYSQL_PWD", async () => {
    const only = await tempDir();
    await writeFile(join(only, "mariadb-dump"), "#!/bin/sh\n");
    await chmod(join(only, "mariadb-dump"), 0o755);
    const mysql = mysqlCall(db({ type: "mysql", host: "h", user: "u", database: "shop" }), only);
    expect(mysql).toEqual({
      argv: ["mariadb-dump", "--single-transaction", "--routines", "--events", "--host=h", "--user=u", "shop"],
      env: { MYSQL_PWD: PW },
    });
    expect(mysqlCall(db({ type: "mysql", database: "all" }), "/nonexistent").argv).toEqual([
      "mysqldump", "--single-transaction", "--routines", "--events", "--all-databases",
    ]);
    expect(mysqlCall(db({ type: "mariadb", socket: "/run/mysqld.sock", database: "x" }), only).argv[0]).toBe("mariadb-dump");
  });

  it("redis: redis-cli --rdb - with REDISCLI_AUTH; mongodb: the password on stdin", () => {
    expect(redisCall(db({ type: "redis", host: "cache", port: 6380, user: "backup" }))).toEqual({
      argv: ["redis-cli", "-h", "cache", "-p", "6380", "--user", "backup", "--rdb", "-"],
      env: { REDISCLI_AUTH: PW },
    });
    expect(mongodbCall(db({ type: "mongodb", host: "m", user: "u", database: "shop" }))).toEqual({
      argv: ["mongodump", "--archive", "--host=m", "--username=u", "--db=shop"],
      env: {},
      input: `${PW}\n`,
    });
  });

  it("the redactor masks a secret as written and URL-encoded", () => {
    const redact = redactor(["p@ss word", undefined]);
    expect(redact("auth p@ss word failed for postgres://u:p%40ss%20word@h")).toBe("auth *** failed for postgres://u:***@h");
    expect(redactor([undefined])("unchanged")).toBe("unchanged");
  });
});
