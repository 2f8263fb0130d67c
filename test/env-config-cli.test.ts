import type { ChildProcess } from "node:child_process";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { vaultik } from "./helpers/cli.js";
import { startDaemon } from "./helpers/daemon.js";
import { cliKeys, copyTree, expectRestores, type LocalRepo } from "./helpers/setup.js";
import { useTempDirs } from "./helpers/temp.js";
import { pseudoRandom } from "./helpers/tree.js";

// Issue 19, container-first config, through the built CLI as `docker run -e … vaultik backup
// --daemon` runs it: no YAML anywhere, every key from a VAULTIK_* variable, secrets from *_FILE.

const tempDir = useTempDirs("vaultik-env-cli-");
const children: ChildProcess[] = [];
let keys: { identity: string; recipient: string };

beforeAll(async () => {
  keys = await cliKeys();
});

afterEach(() => {
  for (const c of children.splice(0)) if (c.exitCode === null) c.kill("SIGKILL");
});

/** A source tree and the variables that describe a config for it; no config file is written. */
async function envRepo(): Promise<{ r: LocalRepo; env: Record<string, string>; tokenFile: string }> {
  const dir = await tempDir();
  const source = join(dir, "source");
  await mkdir(join(source, "sub"), { recursive: true });
  await writeFile(join(source, "big.bin"), pseudoRandom(3 * 1024 * 1024 + 17, 19));
  await writeFile(join(source, "sub", "small.txt"), "hello from the environment\n");
  const tokenFile = join(dir, "token");
  await writeFile(tokenFile, "env-token-0123456789\n");
  const r: LocalRepo = { dir, source, repo: join(dir, "repo"), config: "", identity: keys.identity };
  const env = {
    HOME: dir,
    VAULTIK_AGE_RECIPIENT: keys.recipient,
    VAULTIK_SOURCE_DIRS: source,
    VAULTIK_STORE: r.repo,
    VAULTIK_INDEX_PATH: join(dir, "state", "index.sqlite"),
    VAULTIK_CHUNK_SIZE: "64KiB",
    VAULTIK_BACKUP_INTERVAL: "1s",
    VAULTIK_MIN_TIME_BETWEEN_RUN: "0s",
    VAULTIK_STATUS_LISTEN: "127.0.0.1:0",
    VAULTIK_STATUS_TOKEN_FILE: tokenFile,
  };
  return { r, env, tokenFile };
}

async function status(url: string, headers: Record<string, string>): Promise<number> {
  const res = await fetch(`${url}/status`, { headers });
  await res.arrayBuffer();
  return res.status;
}

describe("vaultik backup with no CONFIG", () => {
  it("--daemon runs from variables alone: backs up, restores bit-exact, takes X-API-Key, reloads its token file on SIGHUP", async () => {
    const { r, env, tokenFile } = await envRepo();
    const frozen = copyTree(r.source, join(r.dir, "frozen"));
    const d = startDaemon(undefined, children, env);
    const url = (await d.waitFor(/status server listening on (http:\/\/\S+)/))[1]!;
    const id = (await d.waitFor(/backup #1 saved snapshot ([^\s:]+):/))[1]!;

    expect(await status(url, { "X-API-Key": "env-token-0123456789" })).toBe(200);
    expect(await status(url, { "X-API-Key": "wrong-token" })).toBe(401);
    expect(await status(url, { authorization: "Bearer env-token-0123456789" })).toBe(200);
    expect(await status(url, {})).toBe(401);
    // The container's HEALTHCHECK reads the same variables.
    const health = await vaultik(["health-check"], { env });
    expect(health.stdout, health.stderr).toMatch(/^healthy: /);
    expect(health.code).toBe(0);

    // A rotated secret file: SIGHUP reads the environment (and the files it names) again.
    await writeFile(tokenFile, "rotated-token-9876543210\n");
    d.child.kill("SIGHUP");
    await d.waitFor(/config reloaded/);
    const urls = [...d.log().matchAll(/status server listening on (http:\/\/\S+)/g)].map((m) => m[1]!);
    const now = urls[urls.length - 1]!;
    expect(await status(now, { "X-API-Key": "rotated-token-9876543210" })).toBe(200);
    expect(await status(now, { "X-API-Key": "env-token-0123456789" })).toBe(401);

    d.child.kill("SIGTERM");
    expect(await d.exited).toBe(0);
    await expectRestores(r, id, frozen);
  });

  it("--cron backs up from variables alone", async () => {
    const { r, env } = await envRepo();
    const out = await vaultik(["backup", "--json"], { env });
    expect(out.code, out.stderr).toBe(0);
    const id = (JSON.parse(out.stdout) as { snapshotId: string }).snapshotId;
    const cron = await vaultik(["backup", "--cron"], { env });
    expect(cron.code, cron.stderr).toBe(0);
    expect(cron.stdout + cron.stderr).toBe("");
    await expectRestores(r, id, r.source);
  });

  it("with neither a file nor variables says what to do (exit 2)", async () => {
    const dir = await tempDir();
    const out = await vaultik(["backup"], { env: { HOME: dir } });
    expect(out.code).toBe(2);
    expect(out.stderr).toMatch(/no config file and no VAULTIK_\* variables: give a config file, or set at least VAULTIK_AGE_RECIPIENT/);
  });

  it("names a misspelt variable (exit 2), and a bad value's variable", async () => {
    const { env } = await envRepo();
    const typo = await vaultik(["backup", "--cron"], { env: { ...env, VAULTIK_SOURCE_DIR: "/x" } });
    expect(typo.code).toBe(2);
    expect(typo.stderr).toContain("VAULTIK_SOURCE_DIR: unknown variable (did you mean VAULTIK_SOURCE_DIRS?)");
    const bad = await vaultik(["backup", "--cron"], { env: { ...env, VAULTIK_RETENTION_KEEP_DAILY: "-1" } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('VAULTIK_RETENTION_KEEP_DAILY: expected a whole number of 0 or more, got "-1"');
  });
});
