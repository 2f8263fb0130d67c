import { readdirSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { runJob } from "../src/backup/job.js";
import { loadConfig } from "../src/config/index.js";
import { openFsStore } from "../src/store/fs.js";
import { vaultik } from "./helpers/cli.js";
import { backupWhileWriting, dbRepo, mustRun, prefixOf, rowValue, Writer } from "./helpers/db-servers.js";
import { cliKeys, localRepo } from "./helpers/setup.js";
import { useTempDirs } from "./helpers/temp.js";

// `databases: [{type: sqlite}]`: the application (the sqlite3 shell, another process) keeps
// inserting while the backup takes SQLite's online backup of its file. The restored file must
// pass integrity_check and hold exactly a prefix of the rows committed, whichever journal mode
// the application uses (WAL readers never wait; a rollback journal's writer locks readers out).

let keys: { identity: string; recipient: string };
const tempDir = useTempDirs("vaultik-dbsqlite-");

beforeAll(async () => {
  keys = await cliKeys();
});

describe("sqlite database source", () => {
  for (const mode of ["wal", "delete"]) {
    it(`copies a ${mode}-mode database consistently while another process writes`, async () => {
      const dir = await tempDir();
      const file = join(dir, "app.db");
      mustRun(["sqlite3", file, `PRAGMA journal_mode=${mode}; CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL);`]);
      const r = await dbRepo(dir, keys, `databases:\n  - type: sqlite\n    file: ${file}\n    path: /databases/app.db\n`);
      const config = await loadConfig(r.config);
      expect(config.databases.map((d) => [d.name, d.path])).toEqual([["sqlite-app", "databases/app.db"]]);
      // The shell waits for locks (as an application would) instead of failing at once.
      const app = new Writer(["sqlite3", file], {}, (i) => `${i === 1 ? ".timeout 10000\n" : ""}INSERT INTO t VALUES (${i}, '${rowValue(i)}'); SELECT ${i};\n`);
      const { started, during } = await backupWhileWriting(app, config, r);
      expect(during).toBeGreaterThan(started);
      // The private copy is gone once streamed.
      expect(readdirSync(`${config.indexPath}.d`).filter((n) => n.startsWith("sqlite-"))).toEqual([]);

      const dump = await vaultik(["dump", "-c", r.config, "latest", "/databases/app.db"], { env: { VAULTIK_PRIVATE_KEY: r.identity } });
      expect(dump.code, dump.stderr).toBe(0);
      const restored = join(dir, "restored.db");
      await writeFile(restored, dump.stdoutBytes);
      expect(mustRun(["sqlite3", restored, "PRAGMA integrity_check;"]).trim()).toBe("ok");
      expect(mustRun(["sqlite3", restored, "PRAGMA journal_mode;"]).trim()).toBe(mode);
      const n = prefixOf(mustRun(["sqlite3", "-separator", "\t", restored, "SELECT id, v FROM t ORDER BY id;"]));
      expect(n).toBeGreaterThanOrEqual(started);
      expect(n).toBeLessThanOrEqual(during);
    });
  }

  it("a missing file fails the run naming the database source", async () => {
    const dir = await tempDir();
    const r = await localRepo(dir, keys, `databases:\n  - type: sqlite\n    name: appdb\n    file: ${join(dir, "missing.db")}\n`);
    const result = await runJob(await loadConfig(r.config), { store: openFsStore(r.repo), log: () => {}, configPath: r.config });
    expect(result.ok).toBe(false);
    expect(result.ok ? "" : (result.error as Error).message).toMatch(/^database appdb: cannot copy .*missing\.db: /);
  });
});
