import { copyFile, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { buffer } from "node:stream/consumers";
import { expect, it } from "vitest";
import { snapshotKey } from "../src/repo/layout.js";
import { openS3Store } from "../src/store/s3.js";
import { vaultik } from "./helpers/cli.js";
import { useTempDirs } from "./helpers/temp.js";
import { s3rverConfigYaml, s3rverStoreOptions, startS3rver } from "./helpers/s3rver.js";
import { backupId, cliKeys, localRepo } from "./helpers/setup.js";

// A snapshot object copied over another must not restore as that other snapshot (issue 14
// item 1): the database's own id is compared with the object's name wherever one is opened.

const tempDir = useTempDirs("vaultik-test-");

it("a snapshot object copied under another snapshot's name is refused by restore, fetch, snapshots, check and prune, naming both ids", async () => {
  const dir = await tempDir();
  const r = await localRepo(dir, await cliKeys());
  await writeFile(join(r.source, "a.txt"), "first\n");
  const s1 = await backupId(r);
  await writeFile(join(r.source, "a.txt"), "second\n");
  const s2 = await backupId(r);
  // What a compromised source could do with put access: S2's object under S1's name.
  await copyFile(join(r.repo, "index", `${s2}.sqlite.zst.age`), join(r.repo, "index", `${s1}.sqlite.zst.age`));
  const env = { VAULTIK_PRIVATE_KEY: r.identity };
  const restore = await vaultik(["restore", r.repo, "", s1, join(dir, "out")], { env });
  expect(restore.code).toBe(1);
  expect(restore.stderr).toContain(`the object named snapshot ${s1} holds snapshot "${s2}"`);
  const check = await vaultik(["check", r.repo, ""], { env });
  expect(check.code).not.toBe(0);
  expect(check.stdout + check.stderr).toContain(s2);
  const fetch = await vaultik(["fetch", r.repo, "", s1, "/a.txt", join(dir, "fetched")], { env });
  expect(fetch.code).toBe(1);
  expect(fetch.stderr).toContain(`the object named snapshot ${s1} holds snapshot "${s2}"`);
  // snapshots lists it, marked damaged with both ids; the honest one is listed as ok.
  const list = await vaultik(["snapshots", r.repo, "", "--json"], { env });
  expect(list.code).toBe(1);
  const rows = JSON.parse(list.stdout) as { id: string; status: string; error?: string }[];
  expect(rows.find((x) => x.id === s1)).toMatchObject({ status: "damaged" });
  expect(rows.find((x) => x.id === s1)?.error).toContain(s2);
  expect(rows.find((x) => x.id === s2)).toMatchObject({ status: "ok" });
  // prune keeps every snapshot here, and refuses to act while one of them is not what it says.
  const prune = await vaultik(["prune", r.repo, "", "--keep-last", "5", "--dry-run"], { env });
  expect(prune.code).toBe(1);
  expect(prune.stderr).toContain(s1);
  // The honest snapshot still restores.
  const ok = await vaultik(["restore", r.repo, "", s2, join(dir, "ok")], { env });
  expect(ok.code, ok.stderr).toBe(0);
});

it("on S3 (s3rver): the same copy is refused by restore, fetch and check, naming both ids", async () => {
  const server = await startS3rver();
  const dir = await tempDir();
  try {
    const r = await localRepo(dir, await cliKeys());
    await writeFile(r.config, (await readFile(r.config, "utf8")).replace(/^store: .*$/m, s3rverConfigYaml(server, "repo")));
    await writeFile(join(r.source, "a.txt"), "first\n");
    const s1 = await backupId(r);
    await writeFile(join(r.source, "a.txt"), "second\n");
    const s2 = await backupId(r);
    // A host with put and delete rights (or a bucket) replaces S1's object with S2's.
    const store = openS3Store(s3rverStoreOptions(server, "repo"));
    const body = await buffer(await store.get(snapshotKey("index/", s2)));
    await store.delete(snapshotKey("index/", s1));
    await store.put(snapshotKey("index/", s1), body);
    const env = { VAULTIK_PRIVATE_KEY: r.identity };
    const refused = `the object named snapshot ${s1} holds snapshot "${s2}"`;
    const restore = await vaultik(["restore", "--config", r.config, s1, join(dir, "out")], { env });
    expect(restore.code).toBe(1);
    expect(restore.stderr).toContain(refused);
    const fetch = await vaultik(["fetch", "--config", r.config, s1, "/a.txt", join(dir, "fetched")], { env });
    expect(fetch.code).toBe(1);
    expect(fetch.stderr).toContain(refused);
    const check = await vaultik(["check", "--config", r.config], { env });
    expect(check.code).toBe(1);
    expect(check.stdout + check.stderr).toContain(refused);
  } finally {
    await server.close();
  }
});
