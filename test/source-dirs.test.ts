import { mkdir, mkdtemp, readdir, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { vaultik } from "./helpers/cli.js";
import { cliKeys } from "./helpers/setup.js";

// A source dir that is missing (an unmounted disk, a typo) must fail the run before anything
// reaches the repository: an empty snapshot would pass for a backup and, with keep-last
// retention, push out good ones.

let dir: string;
let keys: { identity: string; recipient: string };

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-sources-"));
  keys = await cliKeys();
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function configFor(sources: readonly string[]): Promise<{ config: string; repo: string }> {
  const config = join(dir, "vaultik.yml");
  const repo = join(dir, "repo");
  await writeFile(
    config,
    `age_recipient: ${keys.recipient}\nsource_dirs: ${JSON.stringify(sources)}\nstore: ${repo}\nindex_path: ${dir}/state/index.sqlite\n`,
  );
  return { config, repo };
}

/** Every object in a directory repository (empty when nothing was ever written). */
async function objects(repo: string): Promise<string[]> {
  try {
    return (await readdir(repo, { recursive: true, withFileTypes: true })).filter((e) => !e.isDirectory()).map((e) => e.name);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

describe("source_dirs that cannot be backed up", () => {
  it("a missing source dir: exit 1 naming its absolute path, nothing uploaded, no snapshot", async () => {
    const good = join(dir, "good");
    await mkdir(good);
    await writeFile(join(good, "f.txt"), "content");
    const missing = join(dir, "missing");
    const { config, repo } = await configFor([good, missing]);
    const out = await vaultik(["backup", config]);
    expect(out.code, out.stderr).toBe(1);
    expect(out.stderr).toContain(`${missing} does not exist`);
    // Not even a heartbeat: no snapshot, no blob, no object of any kind.
    expect(await objects(repo)).toEqual([]);
  });

  it("a source dir that is a file or a symlink: exit 1 naming it, nothing uploaded", async () => {
    const file = join(dir, "file.txt");
    await writeFile(file, "not a dir");
    const real = join(dir, "real");
    await mkdir(real);
    const link = join(dir, "link");
    await symlink(real, link);
    for (const [source, why] of [[file, "is not a directory"], [link, "is a symlink"]] as const) {
      const { config, repo } = await configFor([source]);
      const out = await vaultik(["backup", config, "--cron"]);
      expect(out.code, out.stderr).toBe(1);
      expect(out.stderr).toContain(`${source} ${why}`);
      expect(await objects(repo)).toEqual([]);
    }
  });

  it("an empty but existing source dir is a successful, empty backup", async () => {
    const empty = join(dir, "empty");
    await mkdir(empty);
    const { config, repo } = await configFor([empty]);
    const out = await vaultik(["backup", config, "--json"]);
    expect(out.code, out.stderr).toBe(0);
    expect((JSON.parse(out.stdout) as { errors: unknown[] }).errors).toEqual([]);
    expect((await objects(repo)).length).toBeGreaterThan(0);
  });
});
