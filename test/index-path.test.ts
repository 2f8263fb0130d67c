import { spawnSync } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { acquireLocalLock } from "../src/backup/lock.js";
import { Catalog } from "../src/catalog/db.js";
import { loadConfig, parseConfig } from "../src/config/index.js";
import { BIN } from "./helpers/cli.js";
import { cliKeys } from "./helpers/setup.js";

// The default index_path is keyed by the repository and the config file, not by the config's
// file name alone: a/vaultik.yml and b/vaultik.yml must neither share an index (each switch
// re-read everything) nor block each other's lock. The index lists every backed-up path, so it
// and its folder are private to the user whatever the umask.

const R = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
const ENV = { HOME: "/home/u", XDG_STATE_HOME: "/xdg" };

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-indexpath-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function indexPathOf(configPath: string, store: string): string {
  return parseConfig(`age_recipient: ${R}\nsource_dirs: [/data]\n${store}\n`, { path: configPath, env: ENV }).indexPath;
}

const mode = (p: string) => statSync(p).mode & 0o777;

describe("the default index_path", () => {
  it("is <config name>-<12 hex>.sqlite, different for two configs of the same name, and for another repository", () => {
    const a = indexPathOf("/etc/a/vaultik.yml", "store: /repo");
    const b = indexPathOf("/etc/b/vaultik.yml", "store: /repo");
    expect(dirname(a)).toBe("/xdg/vaultik");
    expect(basename(a)).toMatch(/^vaultik-[0-9a-f]{12}\.sqlite$/);
    expect(b).not.toBe(a);
    // Stable for the same config and repository; another repository is another index.
    expect(indexPathOf("/etc/a/vaultik.yml", "store: /repo")).toBe(a);
    expect(indexPathOf("/etc/a/vaultik.yml", "store: /other")).not.toBe(a);
    const s3 = (prefix: string) => indexPathOf("/etc/a/vaultik.yml", `s3: {bucket: bkt, prefix: ${prefix}}`);
    expect(s3("one")).not.toBe(s3("two"));
  });

  it("two configs named vaultik.yml in different folders hold their locks at once", async () => {
    const paths: string[] = [];
    for (const sub of ["a", "b"]) {
      await mkdir(join(dir, sub));
      await writeFile(join(dir, sub, "vaultik.yml"), `age_recipient: ${R}\nsource_dirs: [/data]\nstore: /repo\n`);
      paths.push((await loadConfig(join(dir, sub, "vaultik.yml"), { HOME: dir })).indexPath);
    }
    expect(paths[0]).not.toBe(paths[1]);
    await mkdir(dirname(paths[0]!), { recursive: true });
    const first = acquireLocalLock(`${paths[0]}.lock`);
    try {
      const second = acquireLocalLock(`${paths[1]}.lock`);
      second.release();
    } finally {
      first.release();
    }
  });

  it("the index and its -wal/-shm are 0600, its folders 0700, under umask 022 (a real backup)", async () => {
    const keys = await cliKeys();
    const source = join(dir, "source");
    await mkdir(source);
    await writeFile(join(source, "f.txt"), "content");
    const config = join(dir, "vaultik.yml");
    await writeFile(config, `age_recipient: ${keys.recipient}\nsource_dirs: [${source}]\nstore: ${dir}/repo\n`);
    const state = join(dir, "state");
    const run = spawnSync("sh", ["-c", 'umask 022 && exec "$0" "$1" backup "$2" --cron', process.execPath, BIN, config], {
      env: { PATH: process.env["PATH"], HOME: dir, XDG_STATE_HOME: state, NODE_NO_WARNINGS: "1" },
      encoding: "utf8",
    });
    expect(run.status, run.stderr).toBe(0);
    const folder = join(state, "vaultik");
    const [index] = (await readdir(folder)).filter((n) => n.endsWith(".sqlite"));
    expect(index).toMatch(/^vaultik-[0-9a-f]{12}\.sqlite$/);
    const indexPath = join(folder, index!);
    expect(mode(folder).toString(8)).toBe("700");
    expect(mode(indexPath).toString(8)).toBe("600");
    expect(mode(`${indexPath}.d`).toString(8)).toBe("700");

    // The WAL files exist only while the index is open: open it as a backup would.
    const previous = process.umask(0o022);
    const catalog = new Catalog(indexPath);
    try {
      catalog.setState("probe", "1");
      for (const p of [indexPath, `${indexPath}-wal`, `${indexPath}-shm`]) {
        expect(existsSync(p), p).toBe(true);
        expect(mode(p).toString(8), p).toBe("600");
      }
    } finally {
      catalog.close();
      process.umask(previous);
    }
  });

  it("a new index at an explicit path is 0600 too, and an older 0644 one is tightened", async () => {
    const previous = process.umask(0o022);
    try {
      const path = join(dir, "explicit", "index.sqlite");
      new Catalog(path).close();
      expect(mode(path).toString(8)).toBe("600");
      expect(mode(dirname(path)).toString(8)).toBe("700");
      const old = join(dir, "old.sqlite");
      await writeFile(old, "");
      expect(mode(old).toString(8)).toBe("644");
      new Catalog(old).close();
      expect(mode(old).toString(8)).toBe("600");
    } finally {
      process.umask(previous);
    }
  });
});
