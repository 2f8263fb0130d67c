import { chmodSync, closeSync, ftruncateSync, linkSync, lutimesSync, mkdirSync, openSync, symlinkSync, utimesSync, writeFileSync, writeSync } from "node:fs";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, expect } from "vitest";
import { vaultik } from "./cli.js";
import { joinB } from "./fidelity.js";
import { mirrorToS3rver, s3rverCliEnv, startS3rver, type S3rverHandle } from "./s3rver.js";
import { cliKeys } from "./setup.js";
import { pseudoRandom } from "./tree.js";

// The tree issue 16's dump and selective-restore tests back up: names that are not UTF-8, with
// a newline, a space, unicode; a symlink, a hard-link pair, an empty directory, a sparse file,
// a file of several chunks; whole-second mtimes (tar carries seconds).

export const MiB = 1 << 20;
export const SPARSE = { size: 3 * MiB, at: MiB, data: pseudoRandom(4096, 7) };
export const DEEP = pseudoRandom(300 * 1024, 11);
const T0 = 1_700_000_000;

/** Every entry below the root, as bytes relative to it (latin1 strings: "\xff" is byte 0xff). */
export const ENTRIES = [
  "plain.txt",
  "with space.txt",
  "new\nline",
  Buffer.from("résumé ☃.txt").toString("latin1"),
  "bad\xff",
  "link",
  "hard-a",
  "hard-b",
  "empty",
  "sparse",
  "sub",
  "sub/deep.bin",
  "sub/notes.md",
  "logs",
  "logs/a.log",
  "logs/b.log",
  "logs/keep.txt",
] as const;

/** The directories among ENTRIES. */
export const DIRS = new Set(["empty", "sub", "logs"]);

const at = (root: string, latin1: string) => joinB(root, Buffer.from(latin1, "latin1"));

/** Writes the tree at `root` (which must not exist). */
export function makeTrickyTree(root: string): void {
  mkdirSync(root);
  const text = (name: string, body: string, mode = 0o644) => {
    writeFileSync(at(root, name), body);
    chmodSync(at(root, name), mode);
  };
  text("plain.txt", "plain text\n", 0o640);
  text("with space.txt", "a name with a space\n");
  text("new\nline", "a name with a newline\n", 0o600);
  text(Buffer.from("résumé ☃.txt").toString("latin1"), "unicode\n");
  text("bad\xff", "a name that is not UTF-8\n");
  symlinkSync("plain.txt", join(root, "link"));
  text("hard-a", "one inode, two names\n");
  linkSync(join(root, "hard-a"), join(root, "hard-b"));
  mkdirSync(join(root, "empty"), { mode: 0o750 });
  chmodSync(join(root, "empty"), 0o750);
  // Data in the middle, holes before and after it.
  const fd = openSync(join(root, "sparse"), "w");
  try {
    writeSync(fd, SPARSE.data, 0, SPARSE.data.length, SPARSE.at);
    ftruncateSync(fd, SPARSE.size);
  } finally {
    closeSync(fd);
  }
  mkdirSync(join(root, "sub"));
  writeFileSync(join(root, "sub", "deep.bin"), DEEP);
  text("sub/notes.md", "notes\n");
  mkdirSync(join(root, "logs"));
  text("logs/a.log", "log a\n");
  text("logs/b.log", "log b\n");
  text("logs/keep.txt", "keep\n");
  // Times last, directories after what is in them.
  ENTRIES.forEach((name, i) => {
    if (name === "link") lutimesSync(at(root, name), T0 + i, T0 + i);
    else if (!DIRS.has(name)) utimesSync(at(root, name), T0 + i, T0 + i);
  });
  for (const d of DIRS) utimesSync(at(root, d), T0 + 100, T0 + 100);
  utimesSync(root, T0 + 200, T0 + 200);
}

export interface TrickyRepo {
  dir: string;
  /** The backed-up tree. */
  src: string;
  repo: string;
  identity: string;
  snapshotId: string;
}

/** Builds the tree under `dir`/src, backs it up into `dir`/repo through the CLI. */
export async function trickyRepo(dir: string): Promise<TrickyRepo> {
  const src = join(dir, "src");
  makeTrickyTree(src);
  const keys = await cliKeys();
  const repo = join(dir, "repo");
  const config = join(dir, "vaultik.yml");
  await writeFile(config, `age_recipient: ${keys.recipient}\nsource_dirs: [${src}]\nstore: ${repo}\nindex_path: ${dir}/index.sqlite\nchunk_size: 64KiB\nblob_size_limit: 1MiB\n`);
  const out = await vaultik(["backup", config, "--json"]);
  expect(out.code, out.stderr).toBe(0);
  return { dir, src, repo, identity: keys.identity, snapshotId: (JSON.parse(out.stdout) as { snapshotId: string }).snapshotId };
}

/** A repository the CLI reaches as `repoArgs()` with `env()`. */
export interface StoreUnderTest {
  name: string;
  repoArgs: () => string[];
  env: () => Record<string, string>;
}

export interface TrickyFixture {
  /** Set once beforeAll has run. */
  r: TrickyRepo;
  server: S3rverHandle;
  /** The directory store and s3rver (the same objects under `prefix`). */
  stores: StoreUnderTest[];
}

/**
 * Registers a beforeAll that backs the tricky tree up into a directory store and mirrors it into
 * a fresh s3rver under `prefix`, and an afterAll that removes both.
 */
export function useTrickyRepo(prefix: string): TrickyFixture {
  const f = { stores: [] } as unknown as TrickyFixture;
  f.stores.push(
    { name: "directory store", repoArgs: () => [f.r.repo, ""], env: () => ({}) },
    { name: "S3 (s3rver)", repoArgs: () => [f.server.bucket, prefix], env: () => s3rverCliEnv(f.server) },
  );
  let base: string | undefined;
  beforeAll(async () => {
    base = await mkdtemp(join(tmpdir(), `vaultik-${prefix}-`));
    f.r = await trickyRepo(base);
    f.server = await startS3rver();
    await mirrorToS3rver(f.r.repo, f.server, prefix);
  }, 120_000);
  afterAll(async () => {
    await f.server?.close();
    if (base) await rm(base, { recursive: true, force: true });
  });
  return f;
}
