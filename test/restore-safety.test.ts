import { execFileSync } from "node:child_process";
import { link, lstat, mkdir, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Catalog } from "../src/catalog/db.js";
import { generateIdentity, parseIdentity, parseRecipient } from "../src/crypto/keys.js";
import { Repository } from "../src/repo/repository.js";
import { SnapshotBuilder } from "../src/snapshot/build.js";
import { newSnapshotId } from "../src/model/snapshot-id.js";
import type { SnapshotEntry } from "../src/snapshot/schema.js";
import { openFsStore } from "../src/store/fs.js";
import { vaultik } from "./helpers/cli.js";

// Snapshot metadata comes from the bucket, which a compromised source can write to. These
// snapshots are crafted to escape the restore target; restore must refuse each with a clear
// error and write nothing outside the target.

const keys = await generateIdentity();
const recipient = parseRecipient(keys.recipient);
parseIdentity(keys.identity);

let dir: string;
let repoDir: string;
let outside: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-escape-"));
  repoDir = join(dir, "repo");
  outside = join(dir, "outside");
  await mkdir(outside);
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const entry = (path: string, type: SnapshotEntry["type"], extra: Partial<SnapshotEntry> = {}): SnapshotEntry => ({
  path, type, mode: type === "dir" ? 0o755 : 0o644, uid: 0, gid: 0, size: 0, mtimeNs: 1_600_000_000_000_000_000n, ...extra,
});

async function craft(entries: SnapshotEntry[]): Promise<string> {
  const repo = new Repository(openFsStore(repoDir));
  const id = newSnapshotId(new Date(), "evil");
  const path = join(dir, `${id}.sqlite`);
  const builder = new SnapshotBuilder(path, {
    id, host: "evil", time: new Date().toISOString(), sourceDirs: ["/"], vaultikVersion: "0",
    chunker: "fastcdc-2016", chunkSize: 1 << 20, chunkHash: "sha256", blobHash: "sha256", compression: "zstd",
  });
  for (const e of entries) builder.add(e);
  const catalog = new Catalog(join(dir, `${id}-catalog.sqlite`));
  builder.finish(catalog);
  catalog.close();
  await repo.putSnapshot(id, path, [recipient]);
  return id;
}

async function restore(id: string, target: string) {
  return vaultik(["restore", repoDir, "", id, target], { env: { VAULTIK_PRIVATE_KEY: keys.identity } });
}

describe("restore refuses paths that escape the target", () => {
  const cases: [string, SnapshotEntry[], RegExp][] = [
    ["a `..` segment", [entry("ok", "dir"), entry("ok/../../outside/pwned", "file")], /refusing path "ok\/\.\.\/\.\.\/outside\/pwned": it would escape the restore target/],
    ["an absolute path", [entry("/etc/pwned", "file")], /refusing path "\/etc\/pwned"/],
    ["a `.` segment", [entry("./x", "file")], /refusing path "\.\/x"/],
  ];
  for (const [name, entries, message] of cases) {
    it(name, async () => {
      const id = await craft(entries);
      const target = join(dir, `target-${name.replace(/\W+/g, "-")}`);
      const r = await restore(id, target);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(message);
      expect(await readdir(outside)).toEqual([]);
    });
  }

  it("a file below a symlink the same snapshot creates", async () => {
    const id = await craft([entry("a", "symlink", { linkTarget: outside }), entry("a/pwned", "file")]);
    const target = join(dir, "target-symlink");
    const r = await restore(id, target);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/a directory is in the way|refusing to restore through/);
    expect(await readdir(outside)).toEqual([]);
  });

  it("a file below a symlink already in the target", async () => {
    const target = join(dir, "target-existing-link");
    await mkdir(target);
    await symlink(outside, join(target, "a"));
    const id = await craft([entry("a", "dir"), entry("a/pwned", "file")]);
    const r = await restore(id, target);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`refusing to restore through ${join(target, "a")}: it is a symlink`);
    expect(await readdir(outside)).toEqual([]);
  });

  it("a file whose own name is a symlink in the target replaces the link, never writes through it", async () => {
    const target = join(dir, "target-final-link");
    await mkdir(target);
    await symlink(join(outside, "victim"), join(target, "f"));
    const id = await craft([entry("f", "file")]);
    const r = await restore(id, target);
    expect(r.code, r.stderr).toBe(0);
    expect((await lstat(join(target, "f"))).isFile()).toBe(true);
    expect(await readdir(outside)).toEqual([]);
  });

  it("a hard link or a FIFO at a file's name in the target: replaced; the linked file outside keeps its bytes", async () => {
    const target = join(dir, "target-hardlink");
    await mkdir(target);
    const elsewhere = join(outside, "..", "elsewhere.txt");
    await writeFile(elsewhere, "keep me", { mode: 0o644 });
    await link(elsewhere, join(target, "f"));
    execFileSync("mkfifo", [join(target, "g")]);
    const id = await craft([entry("f", "file", { mode: 0o600 }), entry("g", "file")]);
    const r = await restore(id, target);
    expect(r.code, r.stderr).toBe(0);
    expect(await readFile(elsewhere, "utf8")).toBe("keep me");
    // Restored with mode 0600: had it been chmodded through the link, this would say so.
    expect((await stat(elsewhere)).mode & 0o777).toBe(0o644);
    expect((await lstat(join(target, "f"))).nlink).toBe(1);
    expect((await lstat(join(target, "g"))).isFile()).toBe(true);
    expect(await readdir(outside)).toEqual([]);
  });
});
