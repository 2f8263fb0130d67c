import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { collect, spawnCli, vaultik } from "./helpers/cli.js";
import { describeTree, pseudoRandom } from "./helpers/tree.js";

// kill -9 at many points of a backup, then a re-run: the re-run completes, and every earlier
// snapshot still restores bit-exact.

const MiB = 1024 * 1024;
let dir: string;
let identity: string;
let recipient: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-crash-"));
  const kg = await vaultik(["keygen"]);
  identity = kg.stdout.split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
  recipient = kg.stdout.split("\n").find((l) => l.startsWith("# public key: "))!.slice("# public key: ".length);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function addFiles(root: string, tag: string, count: number, size: number, seed: number): Promise<void> {
  await mkdir(join(root, tag), { recursive: true });
  for (let i = 0; i < count; i++) await writeFile(join(root, tag, `f${i}.bin`), pseudoRandom(size + i * 1013, seed + i));
  for (let i = 0; i < 200; i++) await writeFile(join(root, tag, `small-${i}.txt`), `${tag} ${i}\n`);
}

describe("kill -9 during backup", () => {
  it("a re-run completes and every earlier snapshot still restores bit-exact", async () => {
    const source = join(dir, "source");
    const repo = join(dir, "repo");
    const config = join(dir, "vaultik.yml");
    await writeFile(
      config,
      `age_recipient: ${recipient}\nsource_dirs: [${source}]\nstore: ${repo}\nindex_path: ${dir}/state/index.sqlite\n` +
        "chunk_size: 64KiB\nblob_size_limit: 1MiB\n",
    );
    const snapshots: { id: string; copy: string }[] = [];
    const env = { VAULTIK_PRIVATE_KEY: identity };

    // Generation 0 completes normally; each later generation adds data and is killed at a
    // different moment before a clean re-run.
    const kills = [30, 120, 300, 600, 1000, 1600];
    for (let gen = 0; gen <= kills.length; gen++) {
      await addFiles(source, `gen${gen}`, 4, 3 * MiB, gen * 100);
      if (gen > 0) {
        const child = spawnCli(["backup", config, "--cron"]);
        const done = collect(child);
        await new Promise((r) => setTimeout(r, kills[gen - 1]));
        child.kill("SIGKILL");
        const killed = await done;
        // Either it died, or it was quicker than the kill; both are fine, nothing else is.
        expect(killed.signal === "SIGKILL" || killed.code === 0, killed.stderr).toBe(true);
      }
      const r = await vaultik(["backup", config, "--json"]);
      expect(r.code, r.stderr).toBe(0);
      const id = (JSON.parse(r.stdout) as { snapshotId: string }).snapshotId;
      const copy = join(dir, `copy-${gen}`);
      execFileSync("cp", ["-a", source, copy]);
      snapshots.push({ id, copy });
    }

    for (const { id, copy } of snapshots) {
      const target = join(dir, `restore-${id}`);
      const r = await vaultik(["restore", repo, "", id, target], { env });
      expect(r.code, r.stderr).toBe(0);
      const want = await describeTree(copy, { times: false });
      const got = await describeTree(join(target, source.slice(1)), { times: false });
      expect([...got.entries()].map(([k, v]) => [k, v.sha256 ?? v.type])).toEqual([...want.entries()].map(([k, v]) => [k, v.sha256 ?? v.type]));
      await rm(target, { recursive: true, force: true });
    }
  });
});
