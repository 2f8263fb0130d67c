import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { vaultik } from "./helpers/cli.js";
import { cliKeys, localRepo } from "./helpers/setup.js";
import { useTempDirs } from "./helpers/temp.js";

// `databases: [{type: mongodb}]` runs `mongodump --archive`. No Debian package ships MongoDB's
// tools, so this is tested with a stand-in `mongodump` on PATH that checks how it is called
// (no password in argv; the password on stdin, as mongodump reads it when stdin is no
// terminal) and writes a known archive. It is NOT tested against a real MongoDB server.

let keys: { identity: string; recipient: string };
const tempDir = useTempDirs("vaultik-dbmongo-");
const PASSWORD = "mongo-Secret-e61c";

beforeAll(async () => {
  keys = await cliKeys();
});

/** A fake mongodump: with the expected argv and password it writes an archive, else it fails echoing what it got. */
async function fakeMongodump(dir: string, expectedArgs: string): Promise<string> {
  const bin = join(dir, "bin");
  await mkdir(bin);
  await writeFile(
    join(bin, "mongodump"),
    `#!/bin/sh
read -r pw
if [ "$*" != ${JSON.stringify(expectedArgs)} ]; then echo "unexpected arguments: $*" >&2; exit 3; fi
if [ "$pw" != ${JSON.stringify(PASSWORD)} ]; then echo "Failed: (AuthenticationFailed) bad password $pw" >&2; exit 1; fi
printf 'mongo-archive:'; head -c 300000 /dev/zero
`,
  );
  await chmod(join(bin, "mongodump"), 0o755);
  return bin;
}

describe("mongodb database source (stand-in mongodump)", () => {
  it("streams mongodump --archive with the password on stdin, not in argv", async () => {
    const dir = await tempDir();
    const bin = await fakeMongodump(dir, "--archive --uri=mongodb://app@127.0.0.1:27017/shop?authSource=admin");
    const r = await localRepo(dir, keys, `databases:\n  - type: mongodb\n    url: mongodb://app:${PASSWORD}@127.0.0.1:27017/shop?authSource=admin\n`);
    const env = { PATH: `${bin}:${process.env["PATH"]}` };
    const out = await vaultik(["backup", r.config], { env });
    expect(out.code, out.stderr).toBe(0);
    const dump = await vaultik(["dump", "-c", r.config, "latest", "/databases/mongodb-shop.archive"], { env: { VAULTIK_PRIVATE_KEY: r.identity } });
    expect(dump.code, dump.stderr).toBe(0);
    expect(dump.stdoutBytes.length).toBe("mongo-archive:".length + 300000);
    expect(dump.stdout.startsWith("mongo-archive:")).toBe(true);
  });

  it("a wrong password fails the run with mongodump's stderr, the password masked", async () => {
    const dir = await tempDir();
    const bin = await fakeMongodump(dir, "--archive --host=127.0.0.1 --port=27017 --username=app --db=shop");
    const wrong = "wrong-mongo-Pass-1";
    const r = await localRepo(dir, keys, `databases:\n  - type: mongodb\n    name: shop\n    host: 127.0.0.1\n    port: 27017\n    user: app\n    password: ${wrong}\n    database: shop\n`);
    const out = await vaultik(["backup", r.config], { env: { PATH: `${bin}:${process.env["PATH"]}` } });
    expect(out.code).not.toBe(0);
    expect(out.stderr).toContain("database shop: mongodump exited with code 1: Failed: (AuthenticationFailed) bad password ***");
    expect(out.stderr).not.toContain(wrong);
  });

  it("without mongodump installed, the run fails saying so", async () => {
    const dir = await tempDir();
    const r = await localRepo(dir, keys, "databases:\n  - type: mongodb\n    name: shop\n    host: 127.0.0.1\n");
    const out = await vaultik(["backup", r.config], { env: { PATH: "/usr/bin:/bin" } });
    expect(out.code).toBe(1);
    expect(out.stderr).toContain("database shop: mongodump could not start: spawn mongodump ENOENT");
  });
});
