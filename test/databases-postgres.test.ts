import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../src/config/index.js";
import { vaultik } from "./helpers/cli.js";
import { backupWhileWriting, dbRepo, mustRun, PG_BIN, prefixOf, rowValue, startPostgres, Writer, type Postgres } from "./helpers/db-servers.js";
import { cliKeys } from "./helpers/setup.js";
import { useTempDirs } from "./helpers/temp.js";

// `databases: [{type: postgres}]` against a real PostgreSQL 15: pg_dump's custom format is
// streamed into the snapshot while the application keeps inserting, and `vaultik dump … |
// pg_restore` gives back exactly the rows committed when the dump began.

const PASSWORD = "pg-Secret-7f3a9c";
let pg: Postgres;
let keys: { identity: string; recipient: string };
const tempDir = useTempDirs("vaultik-dbpg-");

beforeAll(async () => {
  [pg, keys] = await Promise.all([startPostgres(PASSWORD), cliKeys()]);
  pg.psql("CREATE DATABASE app");
  pg.psql("CREATE TABLE t (id integer PRIMARY KEY, v text NOT NULL)", "app");
});
afterAll(async () => {
  await pg?.server.stop();
});

function writer(db: string): Writer {
  return new Writer([`${PG_BIN}/psql`, "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db], pg.env, (i) =>
    `INSERT INTO t VALUES (${i}, '${rowValue(i)}'); SELECT ${i};\n`,
  );
}

async function setup(extra: string) {
  return dbRepo(await tempDir(), keys, extra);
}

describe("postgres database source", () => {
  it("streams pg_dump -Fc while a writer inserts; pg_restore into a fresh server gives a committed prefix", async () => {
    const dir = await tempDir();
    await writeFile(join(dir, "pgpass"), `${PASSWORD}\n`);
    const r = await setup(
      `databases:\n  - type: postgres\n    host: 127.0.0.1\n    port: ${pg.port}\n    user: postgres\n` +
        `    password_file: ${join(dir, "pgpass")}\n    database: app\n    path: /databases/app.pgdump\n` +
        `  - type: postgres\n    url: postgresql://postgres:${PASSWORD}@127.0.0.1:${pg.port}\n    database: all\n`,
    );
    const config = await loadConfig(r.config);
    const app = writer("app");
    const log: string[] = [];
    const { started, during } = await backupWhileWriting(app, config, r, log);
    expect(log.join("\n")).not.toContain(PASSWORD);
    // The writer really was inserting while the backup ran.
    expect(during).toBeGreaterThan(started);

    const dump = await vaultik(["dump", "-c", r.config, "latest", "/databases/app.pgdump"], { env: { VAULTIK_PRIVATE_KEY: r.identity } });
    expect(dump.code, dump.stderr).toBe(0);
    // Into a fresh server, as after losing the machine.
    const fresh = await startPostgres(PASSWORD);
    try {
      fresh.psql("CREATE DATABASE app");
      mustRun([`${PG_BIN}/pg_restore`, "--no-owner", "-d", "app"], { env: fresh.env, input: dump.stdoutBytes });
      const rows = fresh.psql("SELECT id || E'\\t' || v FROM t ORDER BY id", "app");
      const n = prefixOf(rows);
      expect(n).toBeGreaterThanOrEqual(started);
      expect(n).toBeLessThanOrEqual(during);
    } finally {
      await fresh.server.stop();
    }

    // database: all is pg_dumpall's SQL, with every database of the cluster.
    const all = await vaultik(["dump", "-c", r.config, "latest", "/databases/postgres-all.sql"], { env: { VAULTIK_PRIVATE_KEY: r.identity } });
    expect(all.code, all.stderr).toBe(0);
    expect(all.stdout).toContain("CREATE DATABASE app");
    expect(all.stdout).toContain("CREATE TABLE public.t");
  });

  it("a wrong password fails the backup naming the database source, without the password", async () => {
    const wrong = "not-the-pg-Pass-91c2";
    const r = await setup(
      `databases:\n  - type: postgres\n    name: appdb\n    url: postgres://postgres:${wrong}@127.0.0.1:${pg.port}/app\n    path: databases/app.pgdump\n`,
    );
    const out = await vaultik(["backup", r.config]);
    expect(out.code).toBe(1);
    expect(out.stderr).toContain("database appdb");
    expect(out.stderr).toContain("password authentication failed");
    expect(out.stderr).not.toContain(wrong);
    const list = await vaultik(["snapshots", r.repo, "--json"], { env: { VAULTIK_PRIVATE_KEY: r.identity } });
    expect(list.code, list.stderr).toBe(0);
    expect(JSON.parse(list.stdout)).toEqual([]);
  });
});
