import { readFile, readdir, rm, mkdtemp, writeFile, stat, chmod, chown, mkdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openS3Store } from "../src/store/s3.js";
import type { Store } from "../src/store/store.js";
import { openFsStore } from "../src/store/fs.js";
import { BIN, vaultik } from "./helpers/cli.js";
import { s3rverConfigYaml, s3rverStoreOptions, startS3rver, type S3rverHandle } from "./helpers/s3rver.js";
import { describeTree, LONG_NAME, makeTree, MARKER, pseudoRandom, UNICODE_NAME } from "./helpers/tree.js";

// End to end through the built binary: keygen, backup, snapshots, restore, fetch, on the
// embedded directory store and on a real S3 server.

const MiB = 1024 * 1024;
const CHUNK = 64 * 1024;

let work: string;
let identityFile: string;
let recipient: string;
let privateKey: string;
let server: S3rverHandle;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), "vaultik-cli-"));
  identityFile = join(work, "key.txt");
  const kg = await vaultik(["keygen", "-o", identityFile]);
  expect(kg.code, kg.stderr).toBe(0);
  recipient = kg.stdout.trim();
  expect(recipient).toMatch(/^age1[0-9a-z]{58}$/);
  privateKey = (await readFile(identityFile, "utf8")).split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
  server = await startS3rver("vaultik-cli");
});

afterAll(async () => {
  await server?.close();
  await rm(work, { recursive: true, force: true });
});

interface Setup {
  dir: string;
  source: string;
  config: string;
  store: Store;
  /** `BUCKET PREFIX` for the positional form. */
  location: [string, string];
  env: Record<string, string>;
}

async function setup(kind: "fs" | "s3", name: string, extraYaml = ""): Promise<Setup> {
  const dir = join(work, name);
  const source = join(dir, "source");
  await mkdir(source, { recursive: true });
  const index = join(dir, "state", "index.sqlite");
  let storeYaml: string;
  let store: Store;
  let location: [string, string];
  let env: Record<string, string> = {};
  if (kind === "fs") {
    const repo = join(dir, "repo");
    storeYaml = `store: ${repo}`;
    store = openFsStore(repo);
    location = [repo, ""];
  } else {
    const prefix = `${name}-repo`;
    storeYaml = s3rverConfigYaml(server, prefix);
    store = openS3Store(s3rverStoreOptions(server, prefix));
    location = [server.bucket, prefix];
    env = { VAULTIK_S3_ENDPOINT: server.endpoint, AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_REGION: "us-east-1" };
  }
  const config = join(dir, "vaultik.yml");
  await writeFile(
    config,
    [`age_recipient: ${recipient}`, "source_dirs:", `  - ${source}`, storeYaml, `index_path: ${index}`, `chunk_size: ${CHUNK}`, "blob_size_limit: 4MiB", extraYaml].join("\n"),
  );
  return { dir, source, config, store, location, env };
}

async function allObjects(store: Store): Promise<{ key: string; bytes: Buffer }[]> {
  const out = [];
  for await (const info of store.list("")) {
    const parts: Buffer[] = [];
    for await (const p of await store.get(info.key)) parts.push(p as Buffer);
    out.push({ key: info.key, bytes: Buffer.concat(parts) });
  }
  return out;
}

async function blobKeys(store: Store): Promise<string[]> {
  const keys: string[] = [];
  for await (const info of store.list("blobs/")) keys.push(info.key);
  return keys.sort();
}

async function backup(s: Setup, ...flags: string[]) {
  const r = await vaultik(["backup", s.config, "--json", ...flags]);
  expect(r.code, r.stderr).toBe(0);
  return JSON.parse(r.stdout) as {
    snapshotId: string; filesNew: number; filesChanged: number; filesUnchanged: number;
    bytesRead: number; bytesNew: number; bytesUploaded: number; blobsUploaded: number;
  };
}

function withKey(s: Setup): Record<string, string> {
  return { ...s.env, VAULTIK_PRIVATE_KEY: privateKey };
}

async function expectSameTree(original: string, restored: string): Promise<void> {
  const want = await describeTree(original);
  const got = await describeTree(restored);
  expect([...got.keys()]).toEqual([...want.keys()]);
  for (const [path, entry] of want) expect(got.get(path), path).toEqual(entry);
}

for (const kind of ["fs", "s3"] as const) {
  describe(`backup and restore through the CLI (${kind === "fs" ? "local directory store" : "S3 on s3rver"})`, () => {
    let s: Setup;
    let first: Awaited<ReturnType<typeof backup>>;

    beforeAll(async () => {
      s = await setup(kind, `roundtrip-${kind}`);
      await makeTree(s.source, { chunkSize: CHUNK, bigFileSize: 50 * MiB });
      // Owned by someone else: a restore as root gives it back to them.
      await chown(join(s.source, "private.txt"), 1234, 5678);
      first = await backup(s);
    });

    it("restores the tree bit-exact with modes, mtimes, symlinks, empty dirs and owners", async () => {
      expect(first.filesNew).toBeGreaterThan(15);
      const target = join(s.dir, "restored");
      const r = await vaultik(["restore", ...s.location, "latest", target], { env: withKey(s) });
      expect(r.code, r.stderr).toBe(0);
      await expectSameTree(s.source, join(target, s.source.slice(1)));
      const owned = await stat(join(target, s.source.slice(1), "private.txt"));
      expect([owned.uid, owned.gid]).toEqual([1234, 5678]);
    });

    it("lists the snapshot without a key (host, time) and with one (files, size)", async () => {
      const bare = await vaultik(["snapshots", ...s.location, "--json"], { env: s.env });
      expect(bare.code, bare.stderr).toBe(0);
      const list = JSON.parse(bare.stdout) as { id: string; host: string; time: string; files?: number }[];
      expect(list.map((x) => x.id)).toContain(first.snapshotId);
      expect(list[0]!.files).toBeUndefined();
      const keyed = await vaultik(["snapshots", "--config", s.config, "--json"], { env: withKey(s) });
      expect(keyed.code, keyed.stderr).toBe(0);
      const detailed = JSON.parse(keyed.stdout) as { id: string; files: number; bytes: number }[];
      const mine = detailed.find((x) => x.id === first.snapshotId)!;
      expect(mine.files).toBe(first.filesNew);
      expect(mine.bytes).toBeGreaterThan(50 * MiB);
    });

    it("a second backup of the same tree uploads no new blob and reads nothing", async () => {
      const before = await blobKeys(s.store);
      const second = await backup(s);
      expect(second.blobsUploaded).toBe(0);
      expect(second.bytesRead).toBe(0);
      expect(second.filesUnchanged).toBe(first.filesNew);
      expect(await blobKeys(s.store)).toEqual(before);
    });

    it("changing 1 MiB in the middle of the 50 MiB file uploads only a few chunks' worth", async () => {
      const big = join(s.source, "big.bin");
      const data = await readFile(big);
      pseudoRandom(MiB, 999).copy(data, 25 * MiB);
      await writeFile(big, data);
      const third = await backup(s);
      expect(third.filesChanged).toBe(1);
      expect(third.bytesRead).toBe(50 * MiB);
      // 1 MiB changed plus at most one chunk (max 4 * 64 KiB) cut differently on each side.
      expect(third.bytesNew).toBeGreaterThanOrEqual(MiB);
      expect(third.bytesNew).toBeLessThan(MiB + 2 * 4 * CHUNK + 1);
      const target = join(s.dir, "restored-3");
      const r = await vaultik(["restore", ...s.location, third.snapshotId, target], { env: withKey(s) });
      expect(r.code, r.stderr).toBe(0);
      expect((await readFile(join(target, big.slice(1)))).equals(data)).toBe(true);
    });

    it("--cron prints nothing at all on success", async () => {
      const r = await vaultik(["backup", s.config, "--cron"]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout + r.stderr).toBe("");
    });

    it("the bucket holds no file name and no plaintext marker", async () => {
      const objects = await allObjects(s.store);
      expect(objects.length).toBeGreaterThan(2);
      const needles = [MARKER, UNICODE_NAME, LONG_NAME, "marker.txt", "boundary-", "level-23", "SQLite format 3"].map((n) => Buffer.from(n));
      for (const { key, bytes } of objects) {
        for (const n of needles) {
          expect(key.includes(n.toString()), `key ${key}`).toBe(false);
          expect(bytes.includes(n), `${n.toString()} in ${key}`).toBe(false);
        }
      }
    });

    it("fetches one file by ranged reads, and a directory subtree", async () => {
      const out = join(s.dir, "fetched.txt");
      const file = `${s.source}/docs/${UNICODE_NAME}`;
      const r = await vaultik(["fetch", ...s.location, "latest", file, out, "--json"], { env: withKey(s) });
      expect(r.code, r.stderr).toBe(0);
      expect(await readFile(out, "utf8")).toBe(`unicode ${MARKER}`);
      // One small file out of a repository of more than 50 MiB: only a few KiB are read.
      const summary = JSON.parse(r.stdout) as { bytesFetched: number; files: number };
      expect(summary.files).toBe(1);
      expect(summary.bytesFetched).toBeLessThan(256 * 1024);

      const dirOut = join(s.dir, "fetched-docs");
      const d = await vaultik(["fetch", "--config", s.config, "latest", `${s.source}/docs`, dirOut], { env: withKey(s) });
      expect(d.code, d.stderr).toBe(0);
      await expectSameTree(join(s.source, "docs"), dirOut);
    });
  });
}

describe("clear errors and exit codes", () => {
  let s: Setup;
  beforeAll(async () => {
    s = await setup("fs", "errors");
    await writeFile(join(s.source, "a.txt"), "hello");
    await backup(s);
  });

  it("a wrong key: exit 12, 'no identity matches', naming the object", async () => {
    const other = await vaultik(["keygen"]);
    const wrong = other.stdout.split("\n").find((l) => l.startsWith("AGE-SECRET-KEY-1"))!;
    const r = await vaultik(["restore", ...s.location, "latest", join(s.dir, "x")], { env: { VAULTIK_PRIVATE_KEY: wrong } });
    expect(r.code).toBe(12);
    expect(r.stderr).toMatch(/index\/\S+\.sqlite\.zst\.age: no identity matches/);
    expect(r.stderr).not.toContain(wrong);
  });

  it("a missing snapshot: exit 10, naming it", async () => {
    const r = await vaultik(["restore", ...s.location, "20200101T000000Z_nohost_deadbeef", join(s.dir, "x")], {
      env: { VAULTIK_PRIVATE_KEY: privateKey },
    });
    expect(r.code).toBe(10);
    expect(r.stderr).toContain("snapshot 20200101T000000Z_nohost_deadbeef");
    expect(r.stderr).toContain("not found");
  });

  it("no private key at all: exit 2, saying how to give one", async () => {
    const r = await vaultik(["restore", ...s.location, "latest", join(s.dir, "x")]);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("VAULTIK_PRIVATE_KEY");
  });

  it("bad config: exit 2 naming the key, and nothing uploaded", async () => {
    const cases: [string, RegExp][] = [
      [`age_recipient: ${recipient}\nsource_dirs: [${s.source}]\nstore: ${s.dir}/bad-repo\nchunk_sise: 1MiB\n`, /chunk_sise.*unknown key.*chunk_size/],
      [`age_recipient: ${privateKey}\nsource_dirs: [${s.source}]\nstore: ${s.dir}/bad-repo\n`, /age_recipient.*private key/],
      [`source_dirs: [${s.source}]\nstore: ${s.dir}/bad-repo\n`, /age_recipient/],
      [`age_recipient: ${recipient}\nsource_dirs: [${s.source}]\nstore: ${s.dir}/bad-repo\nblob_size_limit: lots\n`, /blob_size_limit/],
      [`age_recipient: ${recipient}\nsource_dirs: ${s.source}\nstore: ${s.dir}/bad-repo\n`, /source_dirs/],
    ];
    for (const [yaml, pattern] of cases) {
      const config = join(s.dir, "bad.yml");
      await writeFile(config, yaml);
      const r = await vaultik(["backup", config]);
      expect(r.code, yaml).toBe(2);
      expect(r.stderr, yaml).toMatch(pattern);
      expect(r.stderr).not.toContain(privateKey);
    }
    await expect(readdir(join(s.dir, "bad-repo"))).rejects.toThrow(/ENOENT/);
  });

  it("an unreachable endpoint: exit 1, naming the endpoint and never the secret", async () => {
    const secret = "TOPSECRETvalue1234567890";
    const config = join(s.dir, "unreachable.yml");
    await writeFile(
      config,
      `age_recipient: ${recipient}\nsource_dirs: [${s.source}]\nindex_path: ${s.dir}/unreach.sqlite\n` +
        `s3:\n  endpoint: http://127.0.0.1:9\n  bucket: some-bucket\n  access_key_id: AKIAEXAMPLE\n  secret_access_key: ${secret}\n  force_path_style: true\n`,
    );
    const r = await vaultik(["backup", config, "--cron"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("http://127.0.0.1:9");
    expect(r.stderr).not.toContain(secret);
    expect(r.stdout).toBe("");
  });

  it("--cron prints nothing on success", async () => {
    const r = await vaultik(["backup", s.config, "--cron"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout + r.stderr).toBe("");
  });

  it("a second backup while one holds the lock exits 11 and changes nothing", async () => {
    const lock = join(s.dir, "state", "index.sqlite.lock");
    await writeFile(lock, JSON.stringify({ pid: process.pid, host: (await import("node:os")).hostname(), started: new Date().toISOString() }));
    const before = await allObjects(s.store);
    try {
      const r = await vaultik(["backup", s.config]);
      expect(r.code).toBe(11);
      expect(r.stderr).toMatch(/another vaultik backup is running \(pid \d+/);
    } finally {
      await rm(lock, { force: true });
    }
    expect((await allObjects(s.store)).map((o) => o.key)).toEqual(before.map((o) => o.key));
  });

  it("a store that fails mid-run ends the run with its error (files are not skipped one by one)", async () => {
    const f = await setup("fs", "store-fails");
    for (let i = 0; i < 60; i++) await writeFile(join(f.source, `f${i}.bin`), pseudoRandom(200 * 1024, 900 + i));
    // blobs/ is a file: every blob upload fails, while heartbeats under runs/ still work.
    await mkdir(join(f.dir, "repo"), { recursive: true });
    await writeFile(join(f.dir, "repo", "blobs"), "not a directory");
    const r = await vaultik(["backup", f.config, "--json"]);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr).toMatch(/repo.*blobs.*(ENOTDIR|not a directory|EEXIST)/);
    expect(r.stderr).not.toMatch(/could not be read/);
    await expect(readdir(join(f.dir, "repo", "index"))).rejects.toThrow(/ENOENT/);
  });

  it("an unreadable file is reported by path and skipped; the snapshot is written; exit 3", async () => {
    const u = await setup("fs", "unreadable");
    await writeFile(join(u.source, "fine.txt"), "fine");
    await writeFile(join(u.source, "locked.txt"), "locked");
    await chmod(join(u.source, "locked.txt"), 0o000);
    const asRoot = process.getuid?.() === 0;
    // Root reads anything, so run the backup as nobody over a tree nobody may read.
    if (asRoot) {
      for (const p of [work, u.dir, u.source, join(u.source, "fine.txt"), u.config]) await chmod(p, (await stat(p)).isDirectory() ? 0o755 : 0o644);
      await mkdir(join(u.dir, "state"), { recursive: true });
      await mkdir(join(u.dir, "repo"), { recursive: true });
      for (const p of [join(u.dir, "state"), join(u.dir, "repo")]) await chown(p, 65534, 65534);
    }
    // nobody must be able to reach node and the built binary; a checkout under a 0700 temp
    // directory (mktemp -d) is not, so open the ancestors for traversal while the run lasts.
    const opened = asRoot ? await allowTraversal([dirname(BIN), dirname(process.execPath), u.dir]) : [];
    let r;
    try {
      r = await vaultik(["backup", u.config, "--json"], asRoot ? { uid: 65534, gid: 65534, env: { HOME: "/tmp" } } : {});
    } finally {
      for (const [p, mode] of opened) await chmod(p, mode);
    }
    expect(r.code, r.stderr).toBe(3);
    expect(r.stderr).toContain("locked.txt");
    expect(r.stderr).toMatch(/EACCES|permission denied/i);
    const summary = JSON.parse(r.stdout) as { snapshotId: string; errors: { path: string }[] };
    // Absolute, as the user wrote source_dirs (issue 12 item 4), on stderr and in --json.
    expect(r.stderr).toContain(`  ${u.source}/locked.txt: `);
    expect(summary.errors.map((e) => e.path)).toEqual([`${u.source}/locked.txt`]);
    const target = join(u.dir, "restored");
    const rr = await vaultik(["restore", ...u.location, summary.snapshotId, target], { env: { VAULTIK_PRIVATE_KEY: privateKey } });
    expect(rr.code, rr.stderr).toBe(0);
    expect(await readFile(join(target, u.source.slice(1), "fine.txt"), "utf8")).toBe("fine");
  });
});

/** Adds o+x to every ancestor of `paths` that lacks it; returns what to restore. */
async function allowTraversal(paths: readonly string[]): Promise<[string, number][]> {
  const changed: [string, number][] = [];
  for (const start of paths) {
    for (let d = start; ; d = dirname(d)) {
      const mode = (await stat(d)).mode & 0o7777;
      if ((mode & 0o001) === 0 && !changed.some(([p]) => p === d)) {
        changed.push([d, mode]);
        await chmod(d, mode | 0o001);
      }
      if (d === dirname(d)) break;
    }
  }
  return changed;
}
