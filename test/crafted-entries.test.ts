import { createHash } from "node:crypto";
import { copyFile, lstat, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Catalog } from "../src/catalog/db.js";
import { generateIdentity, parseRecipient } from "../src/crypto/keys.js";
import { newSnapshotId } from "../src/model/snapshot-id.js";
import { Repository } from "../src/repo/repository.js";
import { SnapshotBuilder } from "../src/snapshot/build.js";
import type { SnapshotEntry } from "../src/snapshot/schema.js";
import { openFsStore } from "../src/store/fs.js";
import { vaultik } from "./helpers/cli.js";
import { mirrorToS3rver, s3rverCliEnv, startS3rver } from "./helpers/s3rver.js";

// Issue 14 item 7: snapshot entries a compromised source host can craft with what it holds (the
// public key, put access, its own local index of chunk locations). Each crafted entry is an
// integrity error for that entry alone; nothing is written for it, nothing outside the target.

const A = Buffer.from("A".repeat(700) + "first file\n");
const B = Buffer.from("B".repeat(500) + "second file\n");
const sha = (b: Buffer) => createHash("sha256").update(b).digest();

let dir: string;
let repoDir: string;
let identity: string;
let recipient: string;
let index: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-crafted-"));
  repoDir = join(dir, "repo");
  const source = join(dir, "source");
  await mkdir(source);
  await writeFile(join(source, "a.txt"), A);
  await writeFile(join(source, "b.txt"), B);
  const keys = await generateIdentity();
  identity = keys.identity;
  recipient = keys.recipient;
  index = join(dir, "state", "index.sqlite");
  const config = join(dir, "vaultik.yml");
  await writeFile(config, `age_recipient: ${recipient}\nsource_dirs: [${source}]\nstore: ${repoDir}\nindex_path: ${index}\n`);
  const b = await vaultik(["backup", config, "--json"]);
  expect(b.code, b.stderr).toBe(0);
}, 120_000);

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const entry = (path: string, type: SnapshotEntry["type"], extra: Partial<SnapshotEntry> = {}): SnapshotEntry => ({
  path, type, mode: type === "dir" ? 0o755 : 0o644, uid: 0, gid: 0, size: 0, mtimeNs: 1_600_000_000_000_000_000n, ...extra,
});

/**
 * A snapshot as a compromised source host can make one: its entries, chunk locations from its
 * own local index, encrypted to the public key, stored under a fresh snapshot name.
 */
async function craft(entries: [SnapshotEntry, Buffer[]][], tamper?: (db: Database.Database) => void): Promise<string> {
  const id = newSnapshotId(new Date(), "evil");
  const db = join(dir, `${id}.sqlite`);
  const catalogCopy = join(dir, `${id}-index.sqlite`);
  await copyFile(index, catalogCopy);
  const builder = new SnapshotBuilder(db, {
    id, host: "evil", time: new Date().toISOString(), sourceDirs: ["/"], vaultikVersion: "0",
    chunker: "fastcdc-2016", chunkSize: 1 << 20, chunkHash: "sha256", blobHash: "sha256", compression: "zstd",
  });
  for (const [e, chunks] of entries) {
    let offset = 0;
    builder.add(e, chunks.map((c) => ({ offset: (offset += c.length) - c.length, length: c.length, hash: sha(c) })));
  }
  const catalog = new Catalog(catalogCopy);
  try {
    builder.finish(catalog);
  } finally {
    catalog.close();
  }
  if (tamper) {
    const conn = new Database(db);
    tamper(conn);
    conn.close();
  }
  await new Repository(openFsStore(repoDir)).putSnapshot(id, db, [parseRecipient(recipient)]);
  await rm(db);
  await rm(catalogCopy);
  return id;
}

const env = () => ({ VAULTIK_PRIVATE_KEY: identity });
interface Result {
  files: number;
  failed: { files: number; dirs: number; symlinks: number; fifos: number; chardevs: number; blockdevs: number };
  errors: { path: string; message: string }[];
  warnings: { path: string; message: string }[];
}
const absent = async (p: string) => expect(await lstat(p).catch((e: NodeJS.ErrnoException) => e.code)).toBe("ENOENT");

describe("an entry whose chunks reach past its size", () => {
  // Format 2: a file may hold less than its size (the rest is holes), never more.
  let id: string;
  beforeAll(async () => {
    id = await craft([
      [entry("d", "dir"), []],
      [entry("d/huge", "file", { size: 1e13 }), []],
      [entry("d/long", "file", { size: A.length + 1 }), [A]],
      [entry("d/short", "file", { size: 10 }), [A]],
      [entry("d/ok", "file", { size: A.length + B.length }), [A, B]],
    ]);
  });

  it("restore: an integrity error for that file alone, nothing written for it, the rest restored (a size past the chunks is a hole)", async () => {
    const target = join(dir, "size-restore");
    const r = await vaultik(["restore", repoDir, "", id, target, "--json"], { env: env() });
    expect(r.code, r.stderr).toBe(1);
    const out = JSON.parse(r.stdout) as Result;
    expect(out.errors.map((e) => e.path).sort()).toEqual(["d/short"]);
    expect(out.errors[0]!.message).toMatch(/size 10 .*its chunks reach byte 711/);
    expect(out.failed.files).toBe(1);
    expect(out.files).toBe(3);
    expect(await readFile(join(target, "d", "ok"))).toEqual(Buffer.concat([A, B]));
    expect(await readFile(join(target, "d", "long"))).toEqual(Buffer.concat([A, Buffer.alloc(1)]));
    const huge = await lstat(join(target, "d", "huge"));
    expect([huge.size, huge.blocks]).toEqual([1e13, 0]);
    await absent(join(target, "d", "short"));
  });

  it("fetch: the same, to a file and to stdout", async () => {
    const out = join(dir, "size-fetch");
    const r = await vaultik(["fetch", repoDir, "", id, "d/short", out], { env: env() });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/d\/short: .*size 10 /);
    await absent(out);
    const dump = await vaultik(["fetch", repoDir, "", id, "d/short", "-"], { env: env() });
    expect(dump.code).toBe(1);
    expect(dump.stdoutBytes.length).toBe(0);
  });
});

describe("a file entry with entries below it", () => {
  let id: string;
  beforeAll(async () => {
    id = await craft([
      [entry("a", "file", { size: A.length }), [A]],
      [entry("a/b", "file", { size: B.length }), [B]],
      [entry("a/c", "dir"), []],
      [entry("a/c/d", "file", { size: B.length }), [B]],
      [entry("z", "file", { size: B.length }), [B]],
    ]);
  });

  it("fetch of the file writes only that file, at TARGET, and names the entries below it as crafted", async () => {
    const box = join(dir, "nested-fetch");
    await mkdir(box);
    const out = join(box, "out");
    const r = await vaultik(["fetch", repoDir, "", id, "a", out, "--json"], { env: env() });
    expect(r.code, r.stderr).toBe(1);
    const res = JSON.parse(r.stdout) as Result;
    expect(res.errors.map((e) => e.path).sort()).toEqual(["a/b", "a/c", "a/c/d"]);
    for (const e of res.errors) expect(e.message).toMatch(/refusing to restore through "a": the snapshot records it as a file/);
    expect(await readFile(out)).toEqual(A);
    expect(await readdir(box)).toEqual(["out"]);
    expect(await readdir(dir)).not.toContain("b");
  });

  it("restore makes the file a file and refuses what is below it", async () => {
    const target = join(dir, "nested-restore");
    const r = await vaultik(["restore", repoDir, "", id, target, "--json"], { env: env() });
    expect(r.code, r.stderr).toBe(1);
    const res = JSON.parse(r.stdout) as Result;
    expect(res.errors.map((e) => e.path).sort()).toEqual(["a/b", "a/c", "a/c/d"]);
    expect(await readFile(join(target, "a"))).toEqual(A);
    expect(await readFile(join(target, "z"))).toEqual(B);
    expect((await readdir(target)).sort()).toEqual(["a", "z"]);
  });
});

describe("a file that changed while it was read at backup", () => {
  let id: string;
  beforeAll(async () => {
    id = await craft([
      [entry("torn", "file", { size: A.length, status: "changed" }), [A]],
      [entry("fine", "file", { size: B.length }), [B]],
    ]);
  });

  it("restores with a warning naming it, in text and in --json, and exit 0", async () => {
    const text = await vaultik(["restore", repoDir, "", id, join(dir, "torn-text")], { env: env() });
    expect(text.code, text.stderr).toBe(0);
    expect(text.stderr).toContain("vaultik: warning: torn: changed while it was being backed up");
    expect(text.stderr).not.toContain("warning: fine");
    expect(await readFile(join(dir, "torn-text", "torn"))).toEqual(A);

    const json = await vaultik(["restore", repoDir, "", id, join(dir, "torn-json"), "--json"], { env: env() });
    expect(json.code).toBe(0);
    const res = JSON.parse(json.stdout) as Result;
    expect(res.errors).toEqual([]);
    expect(res.warnings.map((w) => w.path)).toEqual(["torn"]);

    const fetched = await vaultik(["fetch", repoDir, "", id, "torn", join(dir, "torn-fetched")], { env: env() });
    expect(fetched.code).toBe(0);
    expect(fetched.stderr).toContain("vaultik: warning: torn: changed while it was being backed up");
  });
});

describe("a path recorded twice", () => {
  it("refuses both entries and restores the rest", async () => {
    // The schema says UNIQUE; a crafted database need not have that schema.
    const id = await craft(
      [
        [entry("dup", "file", { size: A.length }), [A]],
        [entry("dup-twin", "file", { size: B.length }), [B]],
        [entry("ok", "file", { size: B.length }), [B]],
      ],
      (db) => {
        db.pragma("foreign_keys = OFF");
        db.exec("CREATE TABLE f2 AS SELECT * FROM files; DROP TABLE files; ALTER TABLE f2 RENAME TO files");
        // Format 2 stores paths as BLOBs.
        db.exec("UPDATE files SET path = CAST('dup' AS BLOB) WHERE path = CAST('dup-twin' AS BLOB)");
      },
    );
    const target = join(dir, "dup-restore");
    const r = await vaultik(["restore", repoDir, "", id, target, "--json"], { env: env() });
    expect(r.code, r.stderr).toBe(1);
    const res = JSON.parse(r.stdout) as Result;
    expect(res.errors.map((e) => e.path)).toEqual(["dup", "dup"]);
    expect(res.errors[0]!.message).toMatch(/records this path 2 times/);
    await absent(join(target, "dup"));
    expect(await readFile(join(target, "ok"))).toEqual(B);
  });
});

describe("the same crafted entries served by S3 (s3rver)", () => {
  it("restore refuses each crafted entry alone, warns of the torn file, and restores the rest", async () => {
    const id = await craft([
      [entry("huge", "file", { size: 1e13 }), []],
      [entry("a", "file", { size: A.length }), [A]],
      [entry("a/b", "file", { size: B.length }), [B]],
      [entry("torn", "file", { size: A.length, status: "changed" }), [A]],
      [entry("ok", "file", { size: A.length + B.length }), [A, B]],
    ]);
    const server = await startS3rver();
    try {
      await mirrorToS3rver(repoDir, server, "mirror");
      const target = join(dir, "s3-restore");
      const r = await vaultik(["restore", server.bucket, "mirror", id, target, "--json"], { env: { ...s3rverCliEnv(server), ...env() } });
      expect(r.code, r.stderr).toBe(1);
      const res = JSON.parse(r.stdout) as Result;
      expect(res.errors.map((e) => e.path).sort()).toEqual(["a/b"]);
      expect(res.warnings.map((w) => w.path)).toEqual(["torn"]);
      expect(await readFile(join(target, "a"))).toEqual(A);
      expect(await readFile(join(target, "ok"))).toEqual(Buffer.concat([A, B]));
      // Format 2: a size without chunks is a hole.
      expect((await lstat(join(target, "huge"))).blocks).toBe(0);
    } finally {
      await server.close();
    }
  });
});
