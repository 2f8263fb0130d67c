import { randomBytes } from "node:crypto";
import { open, readdir, readFile, stat, utimes, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expect, it } from "vitest";
import { vaultik } from "./helpers/cli.js";
import { useTempDirs } from "./helpers/temp.js";
import { backupId, cliKeys, localRepo } from "./helpers/setup.js";
import { describeTree } from "./helpers/tree.js";

// A re-run of an interrupted restore into the same target skips the files the first run
// finished, after checking them (size, mode, mtime, then every chunk's hash), and writes the
// rest (issue 14 item 9, last sentence). The first run is interrupted by SIGINT at a named point
// of its last pass (VAULTIK_TEST_SIGNAL_AT), so part of the files are finished and part not.

const tempDir = useTempDirs("vaultik-test-");

it("a restore interrupted after part of its files, run again: the finished ones are verified and skipped, a tampered one and the rest are written", async () => {
  const dir = await tempDir();
  // Small chunks, so every file has several and is finished only in the last pass.
  const r = await localRepo(dir, await cliKeys());
  await writeFile(r.config, (await readFile(r.config, "utf8")).replace("chunk_size: 64KiB", "chunk_size: 256"));
  const count = 1500;
  for (let i = 0; i < count; i++) await writeFile(join(r.source, `f${String(i).padStart(4, "0")}.bin`), randomBytes(1500));
  const id = await backupId(r);
  const env = { VAULTIK_PRIVATE_KEY: r.identity };
  const target = join(dir, "out");
  const restored = join(target, r.source.slice(1));

  const first = await vaultik(["restore", r.repo, "", id, target], { env: { ...env, VAULTIK_TEST_SIGNAL_AT: "restore-finish:10:SIGINT" } });
  expect(first.code, first.stderr).toBe(130);
  // What the interrupted run left under final names is finished: the original bytes.
  const names = (await readdir(restored)).sort();
  for (const n of names) expect((await readFile(join(restored, n))).equals(await readFile(join(r.source, n))), n).toBe(true);
  expect(names.length).toBeGreaterThan(1);
  expect(names.length).toBeLessThan(count);

  // Same size, mode and mtime, other bytes: only the content check can tell.
  const tampered = join(restored, names[0]!);
  const before = await stat(tampered, { bigint: true });
  const fh = await open(tampered, "r+");
  await fh.write(Buffer.from("X"), 0, 1, 700);
  await fh.close();
  // Half a microsecond in, as the restore itself sets times, so the microsecond survives the double.
  const mtime = Number(before.mtimeNs / 1000n) / 1e6 + 5e-7;
  await utimes(tampered, mtime, mtime);
  expect((await stat(tampered, { bigint: true })).mtimeNs / 1000n).toBe(before.mtimeNs / 1000n);

  const second = await vaultik(["restore", r.repo, "", id, target, "--json"], { env });
  expect(second.code, second.stderr).toBe(0);
  const summary = JSON.parse(second.stdout) as { files: number; skipped: number };
  expect(summary.files).toBe(count);
  expect(summary.skipped).toBe(names.length - 1);
  const want = await describeTree(r.source, { times: true });
  const got = await describeTree(restored, { times: true });
  expect([...got.entries()]).toEqual([...want.entries()]);

  // Everything is there now: a third run writes nothing and says so.
  const third = await vaultik(["restore", r.repo, "", id, target], { env });
  expect(third.code, third.stderr).toBe(0);
  expect(third.stderr).toContain(`${count} files (${count} already restored and verified, skipped)`);
});
