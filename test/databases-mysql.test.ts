import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runJob } from "../src/backup/job.js";
import { loadConfig } from "../src/config/index.js";
import { openFsStore } from "../src/store/fs.js";
import { vaultik } from "./helpers/cli.js";
import { backupWhileWriting, dbRepo, mustRun, prefixOf, rowValue, startMariadb, Writer, type Mariadb } from "./helpers/db-servers.js";
import { cliKeys } from "./helpers/setup.js";
import { useTempDirs } from "./helpers/temp.js";

// `databases: [{type: mariadb}]` against a real MariaDB: mariadb-dump --single-transaction
// streamed while the application inserts; `vaultik dump … | mariadb` into a fresh server
// gives back exactly the rows committed when the dump's transaction began.

const PASSWORD = "maria-Secret-4b8e21";
let db: Mariadb;
let keys: { identity: string; recipient: string };
const tempDir = useTempDirs("vaultik-dbmaria-");

beforeAll(async () => {
  [db, keys] = await Promise.all([startMariadb(), cliKeys()]);
  db.sql(`CREATE USER 'backup'@'127.0.0.1' IDENTIFIED BY '${PASSWORD}'`);
  db.sql("GRANT ALL ON *.* TO 'backup'@'127.0.0.1'");
  db.sql("CREATE DATABASE app");
  db.sql("CREATE TABLE t (id INT PRIMARY KEY, v CHAR(64) NOT NULL) ENGINE=InnoDB", "app");
  db.sql("CREATE PROCEDURE rows_so_far() SELECT COUNT(*) FROM t", "app");
});
afterAll(async () => {
  await db?.server.stop();
});

async function setup(extra: string) {
  return dbRepo(await tempDir(), keys, extra);
}

describe("mariadb database source", () => {
  it("streams mariadb-dump while a writer inserts; a fresh server restored from it holds a committed prefix", async () => {
    const r = await setup(
      `databases:\n  - type: mariadb\n    url: mariadb://backup:${PASSWORD}@127.0.0.1:${db.port}/app\n    path: /databases/app.sql\n`,
    );
    const config = await loadConfig(r.config);
    const app = new Writer([...db.client, "-N", "-B", "-n", "app"], {}, (i) => `INSERT INTO t VALUES (${i}, '${rowValue(i)}'); SELECT ${i};\n`);
    const log: string[] = [];
    const { started, during } = await backupWhileWriting(app, config, r, log);
    expect(log.join("\n")).not.toContain(PASSWORD);
    expect(during).toBeGreaterThan(started);

    const dump = await vaultik(["dump", "-c", r.config, "latest", "/databases/app.sql"], { env: { VAULTIK_PRIVATE_KEY: r.identity } });
    expect(dump.code, dump.stderr).toBe(0);
    // Into a fresh server, as after losing the machine.
    const fresh = await startMariadb();
    try {
      fresh.sql("CREATE DATABASE app");
      mustRun([...fresh.client, "app"], { input: dump.stdoutBytes });
      const n = prefixOf(fresh.sql("SELECT id, v FROM t ORDER BY id", "app"));
      expect(n).toBeGreaterThanOrEqual(started);
      expect(n).toBeLessThanOrEqual(during);
      // --routines: the procedure came along.
      expect(fresh.sql("CALL rows_so_far()", "app").trim()).toBe(String(n));
    } finally {
      await fresh.server.stop();
    }
  });

  it("a wrong password fails the run naming the database source, without the password", async () => {
    const wrong = "not-the-maria-Pass-55";
    const dir = await tempDir();
    await writeFile(join(dir, "pw"), `${wrong}\n`);
    const r = await setup(
      `databases:\n  - type: mysql\n    host: 127.0.0.1\n    port: ${db.port}\n    user: backup\n    password_file: ${join(dir, "pw")}\n    database: app\n`,
    );
    const log: string[] = [];
    const result = await runJob(await loadConfig(r.config), { store: openFsStore(r.repo), log: (l) => log.push(l), configPath: r.config });
    expect(result.ok).toBe(false);
    const message = result.ok ? "" : (result.error as Error).message;
    expect(message).toMatch(/^database mysql-app: (mysqldump|mariadb-dump) exited with code 2: /);
    expect(message).toContain("Access denied");
    expect(message + log.join("\n")).not.toContain(wrong);
  });
});
