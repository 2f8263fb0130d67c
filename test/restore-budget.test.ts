import { readFile, mkdtemp, rm, writeFile } from "node:fs/promises";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { DEFAULT_MEMORY_LIMIT, restoreBudget } from "../src/restore/budget.js";
import { vaultik } from "./helpers/cli.js";
import { backupId, cliKeys, localRepo } from "./helpers/setup.js";

// The restore's one memory budget (issue 17): a memory limit fixes the writer threads and the
// bytes in flight; more cores never buy more of either beyond what the limit allows.

const MiB = 1024 * 1024;

describe("restoreBudget", () => {
  it("the default 256 MiB gives two writer threads and 16 MiB in flight on 2 cores and on 16", () => {
    expect(DEFAULT_MEMORY_LIMIT).toBe(256 * MiB);
    expect(restoreBudget(DEFAULT_MEMORY_LIMIT, 2)).toEqual({ writers: 2, bytesInFlight: 16 * MiB });
    expect(restoreBudget(DEFAULT_MEMORY_LIMIT, 16)).toEqual({ writers: 2, bytesInFlight: 16 * MiB });
  });

  it("a small limit still restores, with one thread and a floor of bytes in flight", () => {
    expect(restoreBudget(64 * MiB, 16)).toEqual({ writers: 1, bytesInFlight: 4 * MiB });
  });

  it("a larger limit buys threads up to the cores, and bytes in flight in proportion", () => {
    expect(restoreBudget(1024 * MiB, 4)).toEqual({ writers: 4, bytesInFlight: 64 * MiB });
    expect(restoreBudget(1024 * MiB, 64).writers).toBe(8);
  });
});

describe("restore --config reads memory_limit", () => {
  it("128 MiB restores with one writer thread, 1 GiB with as many as the budget allows on this machine; both bit-exact", async () => {
    const dir = await mkdtemp(join(tmpdir(), "vaultik-restore-limit-"));
    try {
      const r = await localRepo(dir, await cliKeys(), "memory_limit: 128MiB\n");
      const bytes = Buffer.alloc(3 * 1024 * 1024, "restore budget ");
      await writeFile(join(r.source, "a.bin"), bytes);
      const id = await backupId(r);
      const big = join(dir, "big.yml");
      await writeFile(big, (await readFile(r.config, "utf8")).replace("memory_limit: 128MiB", "memory_limit: 1GiB"));
      for (const [config, writers] of [[r.config, 1], [big, restoreBudget(1024 * MiB, availableParallelism()).writers]] as const) {
        const target = join(dir, `t-${writers}-${config === big ? "big" : "small"}`);
        const out = await vaultik(["restore", "--config", config, id, target, "--json"], { env: { VAULTIK_PRIVATE_KEY: r.identity } });
        expect(out.code, out.stderr).toBe(0);
        expect((JSON.parse(out.stdout) as { writers: number }).writers, config).toBe(writers);
        expect((await readFile(join(target, r.source.slice(1), "a.bin"))).equals(bytes)).toBe(true);
      }
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
