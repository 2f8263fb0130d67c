import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runJob } from "../src/backup/job.js";
import { loadConfig } from "../src/config/index.js";
import { openFsStore } from "../src/store/fs.js";
import { vaultik } from "./helpers/cli.js";
import { backupWhileWriting, dbRepo, startRedis, Writer, type Redis } from "./helpers/db-servers.js";
import { cliKeys } from "./helpers/setup.js";
import { useTempDirs } from "./helpers/temp.js";

// `databases: [{type: redis}]` against a real Redis 7: `redis-cli --rdb -` streamed while the
// application pushes; a fresh server started on the restored dump.rdb holds a list that is
// exactly a prefix of what was pushed.

const PASSWORD = "redis-Secret-0d9f7a";
let redis: Redis;
let keys: { identity: string; recipient: string };
const tempDir = useTempDirs("vaultik-dbredis-");

beforeAll(async () => {
  [redis, keys] = await Promise.all([startRedis(PASSWORD), cliKeys()]);
});
afterAll(async () => {
  await redis?.server.stop();
});

async function setup(extra: string) {
  return dbRepo(await tempDir(), keys, extra);
}

describe("redis database source", () => {
  it("streams the RDB while a writer pushes; a fresh server loading it holds a committed prefix", async () => {
    const r = await setup(`databases:\n  - type: redis\n    url: redis://:${PASSWORD}@127.0.0.1:${redis.port}\n    path: /databases/redis.rdb\n`);
    const config = await loadConfig(r.config);
    // RPUSH answers with the list's new length: row i's acknowledgement is the line "i".
    const app = new Writer(["redis-cli", "-h", "127.0.0.1", "-p", String(redis.port)], redis.env, (i) => `RPUSH rows ${i}\n`);
    const log: string[] = [];
    const { started, during } = await backupWhileWriting(app, config, r, log);
    expect(log.join("\n")).not.toContain(PASSWORD);
    expect(during).toBeGreaterThan(started);

    const dump = await vaultik(["dump", "-c", r.config, "latest", "/databases/redis.rdb"], { env: { VAULTIK_PRIVATE_KEY: r.identity } });
    expect(dump.code, dump.stderr).toBe(0);
    // What README tells: stop the server, put the file in its dir as dump.rdb, start it.
    expect(dump.stdoutBytes.at(-9)).toBe(0xff); // ends with the EOF opcode and checksum, no marker
    const fresh = await startRedis(PASSWORD, dump.stdoutBytes);
    try {
      const list = fresh.cli("LRANGE", "rows", "0", "-1").split("\n").filter((l) => l !== "");
      const n = list.length;
      expect(list).toEqual(Array.from({ length: n }, (_, k) => String(k + 1)));
      expect(n).toBeGreaterThanOrEqual(started);
      expect(n).toBeLessThanOrEqual(during);
    } finally {
      await fresh.server.stop();
    }
  });

  it("a wrong password fails the run naming the database source, without the password", async () => {
    const wrong = "not-the-redis-Pass-3";
    const r = await setup(`databases:\n  - type: redis\n    name: cache\n    host: 127.0.0.1\n    port: ${redis.port}\n    password: ${wrong}\n`);
    const log: string[] = [];
    const result = await runJob(await loadConfig(r.config), { store: openFsStore(r.repo), log: (l) => log.push(l), configPath: r.config });
    expect(result.ok).toBe(false);
    const message = result.ok ? "" : (result.error as Error).message;
    expect(message).toMatch(/^database cache: redis-cli exited with code 1: /);
    expect(message).toContain("WRONGPASS");
    expect(message + log.join("\n")).not.toContain(wrong);
  });
});
