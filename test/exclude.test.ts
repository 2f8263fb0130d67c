import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { vaultik } from "./helpers/cli.js";
import { cliKeys } from "./helpers/setup.js";
import { describeTree } from "./helpers/tree.js";

// Every exclude form the README's `exclude` row promises, through a real backup and restore
// with the built binary: what comes back is what was not excluded.

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-exclude-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function files(root: string, paths: readonly string[]): Promise<void> {
  for (const p of paths) {
    await mkdir(dirname(join(root, p)), { recursive: true });
    await writeFile(join(root, p), p);
  }
}

async function restoredFiles(target: string, source: string): Promise<string[]> {
  const tree = await describeTree(join(target, source.slice(1)));
  return [...tree].filter(([, e]) => e.type === "file").map(([p]) => p).sort();
}

describe("exclude patterns (README `exclude` row)", () => {
  it("*.log at any depth, node_modules/ directories only, /build at the top of each source dir, !keep.log, an absolute path inside a source dir", async () => {
    const keys = await cliKeys();
    const one = join(dir, "one");
    const two = join(dir, "two");
    await files(one, [
      "a.log", "deep/x/b.log", "keep.log", "deep/keep.log",
      "node_modules/pkg/index.js", "lib/node_modules",
      "build/f", "sub/build/g",
      "cache/tmp/t", "cache/keep.txt",
      "ok.txt",
    ]);
    await files(two, ["build/h", "cache/tmp/u", "two.txt"]);
    const config = join(dir, "vaultik.yml");
    const repo = join(dir, "repo");
    const patterns = ["*.log", "node_modules/", "/build", "!keep.log", `${one}/cache/tmp`];
    await writeFile(
      config,
      `age_recipient: ${keys.recipient}\nsource_dirs: [${one}, ${two}]\nstore: ${repo}\n` +
        `index_path: ${dir}/state/index.sqlite\nexclude: ${JSON.stringify(patterns)}\n`,
    );
    const backup = await vaultik(["backup", config]);
    expect(backup.code, backup.stderr).toBe(0);
    const target = join(dir, "restore");
    const restore = await vaultik(["restore", repo, "", "latest", target], { env: { VAULTIK_PRIVATE_KEY: keys.identity } });
    expect(restore.code, restore.stderr).toBe(0);

    expect(await restoredFiles(target, one)).toEqual([
      "cache/keep.txt",
      "deep/keep.log", // !keep.log re-includes at any depth
      "keep.log",
      "lib/node_modules", // a file: node_modules/ names directories only
      "ok.txt",
      "sub/build/g", // /build is anchored at the top of the source dir
    ]);
    // /build applies at the top of every source dir; the absolute path only inside its own.
    expect(await restoredFiles(target, two)).toEqual(["cache/tmp/u", "two.txt"]);
  });
});
