import { randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { runJob } from "../src/backup/job.js";
import { runBackup } from "../src/backup/run.js";
import type { BackupSettings, JobSettings } from "../src/backup/settings.js";
import { backupStore } from "../src/cli/backup.js";
import { parseConfig, type Config } from "../src/config/index.js";
import { generateIdentity, parseRecipient } from "../src/crypto/keys.js";
import { openMemoryStore } from "../src/store/memory.js";

// The backup job (hooks around a run, command sources) lives in backup/ and takes only the
// settings it uses, so it runs in-process over a MemoryStore without a config file (issue 13
// item 5). A Config still fits where settings are asked for: the CLI and tests pass one as is.

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

async function settings(extra: Partial<JobSettings> = {}): Promise<JobSettings> {
  const dir = await mkdtemp(join(tmpdir(), "vaultik-job-"));
  dirs.push(dir);
  const source = join(dir, "source");
  await mkdir(source);
  await writeFile(join(source, "a.txt"), "hello\n");
  const { recipient } = await generateIdentity();
  return {
    recipients: [parseRecipient(recipient)],
    sourceDirs: [source],
    exclude: [],
    chunkSize: 64 << 10,
    blobSizeLimit: 1 << 20,
    indexPath: join(dir, "state", "index.sqlite"),
    indexPrefix: "index/",
    commands: [],
    ...extra,
  };
}

describe("runJob (backup/job.ts)", () => {
  it("runs pre_backup, the backup with its command sources, then post_backup with the outcome", async () => {
    const store = openMemoryStore();
    const log: string[] = [];
    const s = await settings({
      hooks: { preBackup: "echo pre", postBackup: 'echo "post $VAULTIK_STATUS $VAULTIK_SNAPSHOT_ID"', timeout: 10_000 },
      commands: [{ name: "dump", run: "printf dumped", path: "commands/dump.txt" }],
    });
    const result = await runJob(s, { store, log: (l) => log.push(l), configPath: "/nowhere.yml" });
    if (!result.ok) throw result.error;
    expect(result.summary.filesNew).toBe(2); // a.txt and the command's output
    expect(log).toContain("[hook pre_backup] pre");
    expect(log).toContain(`[hook post_backup] post success ${result.summary.snapshotId}`);
    expect([...store.objects.keys()].some((k) => k.startsWith("index/"))).toBe(true);
  });

  it("backs up two commands' outputs of many pieces each in one run (they share a pack worker)", async () => {
    const store = openMemoryStore();
    const s = await settings({
      commands: [
        { name: "one", run: "seq 1 300000", path: "commands/one.txt" },
        { name: "two", run: "seq 300001 600000", path: "commands/two.txt" },
      ],
    });
    const result = await runJob(s, { store, log: () => {}, configPath: "/nowhere.yml" });
    if (!result.ok) throw result.error;
    expect(result.summary.filesNew).toBe(3);
    const bytes = (from: number, to: number) => {
      let n = 0;
      for (let i = from; i <= to; i++) n += String(i).length + 1;
      return n;
    };
    expect(result.summary.bytesRead).toBe("hello\n".length + bytes(1, 300000) + bytes(300001, 600000));
  }, 60_000);

  it("makes no snapshot when pre_backup fails, and post_backup still learns why", async () => {
    const store = openMemoryStore();
    const log: string[] = [];
    const s = await settings({ hooks: { preBackup: "exit 3", postBackup: 'echo "post $VAULTIK_STATUS: $VAULTIK_ERROR"', timeout: 10_000 } });
    const result = await runJob(s, { store, log: (l) => log.push(l), configPath: "/nowhere.yml" });
    expect(result.ok).toBe(false);
    expect(String(!result.ok && result.error)).toMatch(/pre_backup hook failed \(exit code 3\); no backup was made/);
    expect(log).toContain("[hook post_backup] post failure: pre_backup hook failed (exit code 3); no backup was made");
    expect([...store.objects.keys()]).toEqual([]);
  });
});

describe("the settings a backup takes", () => {
  it("are a narrow part of the config: a loaded Config is accepted as is", () => {
    // Compile-time facts, checked by `npm run typecheck`; the runtime assertion keeps them used.
    const asBackup = (c: Config): BackupSettings => c;
    const asJob = (c: Config): JobSettings => c;
    expect(typeof runBackup).toBe("function");
    expect([asBackup, asJob]).toHaveLength(2);
  });
});

describe("the store a backup writes to (cli/backup.ts)", () => {
  it("goes through limit_upload, now applied where the CLI builds the store", async () => {
    const dir = await mkdtemp(join(tmpdir(), "vaultik-job-"));
    dirs.push(dir);
    const { recipient } = await generateIdentity();
    const config = parseConfig(
      `age_recipient: ${recipient}\nsource_dirs: [${dir}]\nstore: ${dir}/repo\nindex_path: ${dir}/state/index.sqlite\nlimit_upload: 512KiB/s\n`,
      { path: join(dir, "vaultik.yml") },
    );
    const store = backupStore(config);
    const started = performance.now();
    expect(await store.put("blobs/x", randomBytes(1 << 20))).toBe(true);
    // 1 MiB at 512 KiB/s is 2 s. A lower bound only: sleeping cannot finish early.
    expect(performance.now() - started).toBeGreaterThanOrEqual(1_500);
  });
});
