import { createHash } from "node:crypto";
import { copyFile, lstat, mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from "node:fs/promises";
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
/** A chunk of a crafted file: its bytes, placed after the previous one, or at an offset of its own. */
type CraftedChunk = Buffer | { at: number; data: Buffer };

async function craft(entries: [SnapshotEntry, CraftedChunk[]][], tamper?: (db: Database.Database) => void): Promise<string> {
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
    builder.add(
      e,
      chunks.map((c) => {
        const [at, data] = Buffer.isBuffer(c) ? [offset, c] : [c.at, c.data];
        offset = at + data.length;
        return { offset: at, length: data.length, hash: sha(data) };
      }),
    );
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
  failed: { files: number; dirs: number; symlinks: number };
  errors: { path: string; message: string }[];
  warnings: { path: string; message: string }[];
}
const absent = async (p: string) => expect(await lstat(p).catch((e: NodeJS.ErrnoException) => e.code)).toBe("ENOENT");

describe("an entry whose chunks reach past its size", () => {
  // Format 2 places chunks by offset: a gap is a hole, so a file may hold less than its size
  // (a sparse file), never more.
  let id: string;
  beforeAll(async () => {
    id = await craft([
      [entry("d", "dir"), []],
      [entry("d/beyond", "file", { size: A.length }), [{ at: 1e12, data: A }]],
      [entry("d/short", "file", { size: 10 }), [A]],
      [entry("d/holes", "file", { size: 1 << 30 }), [{ at: 1 << 20, data: A }]],
      [entry("d/ok", "file", { size: A.length + B.length }), [A, B]],
    ]);
  });

  it("restore: an integrity error for that file alone, nothing written for it, the rest restored (holes too)", async () => {
    const target = join(dir, "size-restore");
    const r = await vaultik(["restore", repoDir, "", id, target, "--json"], { env: env() });
    expect(r.code, r.stderr).toBe(1);
    const out = JSON.parse(r.stdout) as Result;
    expect(out.errors.map((e) => e.path).sort()).toEqual(["d/beyond", "d/short"]);
    const beyond = out.errors.find((e) => e.path === "d/beyond")!;
    expect(beyond.message).toMatch(new RegExp(`size ${A.length} but its chunks reach byte ${1e12 + A.length}`));
    expect(out.failed.files).toBe(2);
    expect(out.files).toBe(2);
    expect(await readFile(join(target, "d", "ok"))).toEqual(Buffer.concat([A, B]));
    const holes = join(target, "d", "holes");
    const st = await lstat(holes);
    expect(st.size).toBe(1 << 30);
    // A sparse 1 GiB file: only the chunk's blocks are allocated.
    expect(st.blocks * 512).toBeLessThan(1 << 20);
    const fh = await open(holes, "r");
    try {
      const at = Buffer.alloc(A.length);
      await fh.read(at, 0, A.length, 1 << 20);
      expect(at).toEqual(A);
    } finally {
      await fh.close();
    }
    for (const f of ["beyond", "short"]) await absent(join(target, "d", f));
  });

  it("fetch: the same, to a file and to stdout", async () => {
    const out = join(dir, "size-fetch");
    const r = await vaultik(["fetch", repoDir, "", id, "d/beyond", out], { env: env() });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/d\/beyond: .*chunks reach byte/);
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

describe("a path stored once as bytes and once as text (format 2)", () => {
  it("refuses both entries: SQL tells them apart, the file system would not", async () => {
    // No schema change needed: UNIQUE too tells TEXT 'dup' from BLOB X'647570'.
    const id = await craft(
      [
        [entry("dup", "file", { size: A.length }), [A]],
        [entry("dup-twin", "file", { size: B.length }), [B]],
        [entry("ok", "file", { size: B.length }), [B]],
      ],
      (db) => db.exec("UPDATE files SET path = 'dup' WHERE path = CAST('dup-twin' AS BLOB)"),
    );
    const target = join(dir, "dup-text-restore");
    const r = await vaultik(["restore", repoDir, "", id, target, "--json"], { env: env() });
    expect(r.code, r.stderr).toBe(1);
    const res = JSON.parse(r.stdout) as Result;
    expect(res.errors.map((e) => e.path)).toEqual(["dup", "dup"]);
    expect(res.errors.map((e) => e.message).join("\n")).toMatch(/records this path 2 times/);
    await absent(join(target, "dup"));
    expect(await readFile(join(target, "ok"))).toEqual(B);
  });
});

describe("a file referencing a chunk the snapshot gives no location for", () => {
  let id: string;
  beforeAll(async () => {
    id = await craft(
      [
        [entry("u", "dir"), []],
        [entry("u/unplaced", "file", { size: A.length + 10 }), [A]],
        [entry("u/ok", "file", { size: B.length }), [B]],
      ],
      (db) => {
        db.pragma("foreign_keys = OFF");
        db.exec("INSERT INTO file_chunks(file_id, offset, chunk) SELECT id, " + A.length + ", randomblob(32) FROM files WHERE path = CAST('u/unplaced' AS BLOB)");
      },
    );
  });

  it("restore fails that file alone, writes nothing of it, and restores the rest", async () => {
    const target = join(dir, "unplaced-restore");
    const r = await vaultik(["restore", repoDir, "", id, target, "--json"], { env: env() });
    expect(r.code, r.stderr).toBe(1);
    const res = JSON.parse(r.stdout) as Result;
    expect(res.errors.map((e) => e.path)).toEqual(["u/unplaced"]);
    expect(res.errors[0]!.message).toMatch(/no blob location/);
    await absent(join(target, "u", "unplaced"));
    expect(await readFile(join(target, "u", "ok"))).toEqual(B);
  });

  it("fetch to stdout refuses it before writing a byte", async () => {
    const dump = await vaultik(["fetch", repoDir, "", id, "u/unplaced", "-"], { env: env() });
    expect(dump.code).toBe(1);
    expect(dump.stderr).toMatch(/1 of its 2 chunk references have no blob location/);
    expect(dump.stdoutBytes.length).toBe(0);
  });
});

describe("the same crafted entries served by S3 (s3rver)", () => {
  it("restore refuses each crafted entry alone, warns of the torn file, and restores the rest", async () => {
    const id = await craft([
      [entry("beyond", "file", { size: 1 }), [{ at: 1e12, data: A }]],
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
      expect(res.errors.map((e) => e.path).sort()).toEqual(["a/b", "beyond"]);
      expect(res.warnings.map((w) => w.path)).toEqual(["torn"]);
      expect(await readFile(join(target, "a"))).toEqual(A);
      expect(await readFile(join(target, "ok"))).toEqual(Buffer.concat([A, B]));
      await absent(join(target, "beyond"));
    } finally {
      await server.close();
    }
  });
});
