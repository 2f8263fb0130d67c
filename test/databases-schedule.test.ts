import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it, vi } from "vitest";
import { runJob } from "../src/backup/job.js";
import { loadConfig, type Config } from "../src/config/index.js";
import { openFsStore } from "../src/store/fs.js";
import { vaultik } from "./helpers/cli.js";
import { dbRepo, mustRun } from "./helpers/db-servers.js";
import { cliKeys } from "./helpers/setup.js";
import { useTempDirs } from "./helpers/temp.js";
import type { LocalRepo } from "./helpers/setup.js";

// A database with its own `schedule` is dumped only when a time of its cron expression has come
// since its last dump; between those, each snapshot carries the last dump forward (from the
// local index, without running the tool). The clock is injected (fake Date), never waited for.

let keys: { identity: string; recipient: string };
const tempDir = useTempDirs("vaultik-dbsched-");

beforeAll(async () => {
  keys = await cliKeys();
});

async function backupAt(config: Config, r: LocalRepo, iso: string) {
  vi.useFakeTimers({ toFake: ["Date"], now: new Date(iso) });
  try {
    const result = await runJob(config, { store: openFsStore(r.repo), log: () => {}, configPath: r.config });
    if (!result.ok) throw result.error;
    return result.summary;
  } finally {
    vi.useRealTimers();
  }
}

async function rowsIn(r: LocalRepo, id: string): Promise<string> {
  const dump = await vaultik(["dump", "-c", r.config, id, "/databases/app.db"], { env: { VAULTIK_PRIVATE_KEY: r.identity } });
  expect(dump.code, dump.stderr).toBe(0);
  const file = join(r.dir, `restored-${id}.db`);
  await writeFile(file, dump.stdoutBytes);
  return mustRun(["sqlite3", file, "SELECT group_concat(id) FROM t;"]).trim();
}

describe("databases[].schedule", () => {
  it("dumps when due and carries the last dump forward in between", async () => {
    const dir = await tempDir();
    const file = join(dir, "app.db");
    mustRun(["sqlite3", file, "CREATE TABLE t (id INTEGER PRIMARY KEY); INSERT INTO t VALUES (1);"]);
    const r = await dbRepo(dir, keys, `databases:\n  - type: sqlite\n    file: ${file}\n    path: /databases/app.db\n    schedule: "0 3 * * *"\n`);
    const config = await loadConfig(r.config);

    const first = await backupAt(config, r, "2026-01-01T10:00:00Z");
    mustRun(["sqlite3", file, "INSERT INTO t VALUES (2);"]);
    // 03:00 has not come again since 10:00: not due.
    const second = await backupAt(config, r, "2026-01-01T23:00:00Z");
    const third = await backupAt(config, r, "2026-01-02T03:30:00Z");

    expect([first.filesNew, second.filesUnchanged, third.filesNew]).toEqual([2, 2, 1]);
    expect(await rowsIn(r, first.snapshotId)).toBe("1");
    expect(await rowsIn(r, second.snapshotId)).toBe("1");
    expect(await rowsIn(r, third.snapshotId)).toBe("1,2");
  });

  it("is checked like the top-level schedule", async () => {
    const dir = await tempDir();
    const r = await dbRepo(dir, keys, `databases:\n  - type: sqlite\n    file: a.db\n    schedule: "0 0 31 2 *"\n`);
    await expect(loadConfig(r.config)).rejects.toThrow('databases[0].schedule: "0 0 31 2 *" never matches any date');
  });
});
