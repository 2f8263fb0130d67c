import { execFileSync } from "node:child_process";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expect, vi } from "vitest";
import { runBackup } from "../../src/backup/run.js";
import { loadConfig } from "../../src/config/index.js";
import { parseIdentity } from "../../src/crypto/keys.js";
import { Repository } from "../../src/repo/repository.js";
import { Restorer, type RestoreSummary } from "../../src/restore/restorer.js";
import { referencedBlobs } from "../../src/snapshot/blobs.js";
import { withSnapshot } from "../../src/snapshot/open.js";
import { openFsStore } from "../../src/store/fs.js";
import { vaultik } from "./cli.js";
import { describeTree } from "./tree.js";

/** A key pair made by the CLI, as a user would. */
export async function cliKeys(): Promise<{ identity: string; recipient: string }> {
  const kg = await vaultik(["keygen"]);
  expect(kg.code, kg.stderr).toBe(0);
  const lines = kg.stdout.split("\n");
  return {
    identity: lines.find((l) => l.startsWith("AGE-SECRET-KEY-1"))!,
    recipient: lines.find((l) => l.startsWith("# public key: "))!.slice("# public key: ".length),
  };
}

export interface LocalRepo {
  dir: string;
  source: string;
  repo: string;
  config: string;
  identity: string;
}

/** A source tree, a directory repository and a config for it, under `dir`. */
export async function localRepo(dir: string, keys: { identity: string; recipient: string }, extra = ""): Promise<LocalRepo> {
  const source = join(dir, "source");
  const repo = join(dir, "repo");
  const config = join(dir, "vaultik.yml");
  await mkdir(source, { recursive: true });
  await writeFile(
    config,
    `age_recipient: ${keys.recipient}\nsource_dirs: [${source}]\nstore: ${repo}\nindex_path: ${dir}/state/index.sqlite\n` +
      `chunk_size: 64KiB\nblob_size_limit: 1MiB\n${extra}`,
  );
  return { dir, source, repo, config, identity: keys.identity };
}

export async function backupId(r: LocalRepo): Promise<string> {
  const out = await vaultik(["backup", r.config, "--json"]);
  expect(out.code, out.stderr).toBe(0);
  return (JSON.parse(out.stdout) as { snapshotId: string }).snapshotId;
}

/**
 * A backup made in-process with the clock set to `at`. Snapshot ids have one-second
 * resolution, and keep-last must see a clear order: this gives one without sleeping. `host`
 * names the snapshot's host (default: this one's).
 */
export async function backupAt(r: LocalRepo, at: number, host?: string): Promise<string> {
  const config = await loadConfig(r.config);
  vi.useFakeTimers({ toFake: ["Date"], now: at });
  try {
    return (await runBackup(config, { store: openFsStore(r.repo), host })).snapshotId;
  } finally {
    vi.useRealTimers();
  }
}

/** Freezes the source as it is now, to compare a restore with later. */
export function copyTree(from: string, to: string): string {
  execFileSync("cp", ["-a", from, to]);
  return to;
}

/**
 * Restores `id` and asserts it equals the tree `expected` (content, types, modes). Through the
 * CLI by default; `via: "library"` restores in this process, for tests about what the
 * repository holds rather than about the CLI (a spawn costs about 2 s on a loaded machine).
 */
export async function expectRestores(r: LocalRepo, id: string, expected: string, via: "cli" | "library" = "cli"): Promise<void> {
  const target = join(r.dir, `restore-${id}-${Math.random().toString(36).slice(2)}`);
  try {
    if (via === "cli") {
      const out = await vaultik(["restore", r.repo, "", id, target], { env: { VAULTIK_PRIVATE_KEY: r.identity } });
      expect(out.code, `restore ${id}: ${out.stderr}`).toBe(0);
    } else {
      const summary = await restoreInProcess(r, id, target);
      expect(summary.errors, `restore ${id}`).toEqual([]);
    }
    const want = await describeTree(expected, { times: false });
    const got = await describeTree(join(target, r.source.slice(1)), { times: false });
    expect([...got.entries()], `snapshot ${id}`).toEqual([...want.entries()]);
  } finally {
    await rm(target, { recursive: true, force: true });
  }
}

async function restoreInProcess(r: LocalRepo, id: string, target: string): Promise<RestoreSummary> {
  const repo = new Repository(openFsStore(r.repo));
  const identities = [parseIdentity(r.identity)];
  const snapshot = await repo.findSnapshot(id);
  return withSnapshot(repo, snapshot, identities, (reader) => new Restorer({ repo, identities, snapshot: reader, target }).run());
}

/** Blob names a snapshot references, read through the library. */
export async function blobsOf(r: LocalRepo, id: string): Promise<string[]> {
  const repo = new Repository(openFsStore(r.repo));
  const snap = await repo.findSnapshot(id);
  return referencedBlobs(repo, snap, [parseIdentity(r.identity)]);
}

export async function storedBlobs(r: LocalRepo): Promise<string[]> {
  const names: string[] = [];
  for await (const info of openFsStore(r.repo).list("blobs/")) names.push(info.key.split("/").pop()!);
  return names.sort();
}

export async function readJsonFile<T>(path: string): Promise<T> {
  return JSON.parse(await readFile(path, "utf8")) as T;
}
