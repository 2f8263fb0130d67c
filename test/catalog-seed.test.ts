import { existsSync } from "node:fs";
import { readFile, rm, unlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import Database from "better-sqlite3";
import { beforeAll, describe, expect, it } from "vitest";
import { Catalog } from "../src/catalog/db.js";
import { importSeed, seedLines, type SeedRecord } from "../src/catalog/seed.js";
import { IntegrityError } from "../src/errors.js";
import { openFsStore } from "../src/store/fs.js";
import { vaultik } from "./helpers/cli.js";
import { useTempDirs } from "./helpers/temp.js";
import { cliKeys, copyTree, expectRestores, localRepo, type LocalRepo } from "./helpers/setup.js";
import { pseudoRandom } from "./helpers/tree.js";

// Losing the local index used to mean uploading everything again (the same 3 MB became a second
// blob). `export-catalog` on the key-holding machine writes what the host's index needs, and
// `import-catalog` on the host seeds a new index from it, so the next backup of unchanged data
// uploads only its snapshot (issue 14 item 8).

let keys: { identity: string; recipient: string };
const tempDir = useTempDirs("vaultik-seed-");

beforeAll(async () => {
  keys = await cliKeys();
});

interface Backup {
  snapshotId: string;
  blobsUploaded: number;
  filesUnchanged: number;
  filesNew: number;
  bytesRead: number;
}

async function backup(r: LocalRepo): Promise<Backup> {
  const out = await vaultik(["backup", r.config, "--json"]);
  expect(out.code, out.stderr).toBe(0);
  return JSON.parse(out.stdout) as Backup;
}

/** Blob name → size, as the repository lists them. */
async function listing(r: LocalRepo): Promise<Map<string, number>> {
  const m = new Map<string, number>();
  for await (const info of openFsStore(r.repo).list("blobs/")) m.set(info.key.split("/").pop()!, info.size);
  return m;
}

const FILES = 40;

/** A backed-up tree, its frozen copy, and the index deleted (as a lost disk would). */
async function afterIndexLoss(): Promise<{ r: LocalRepo; first: Backup; frozen: string; index: string; host: string }> {
  const dir = await tempDir();
  const r = await localRepo(dir, keys);
  await writeFile(join(r.source, "big.bin"), pseudoRandom(3 << 20, 5));
  for (let i = 0; i < FILES - 1; i++) await writeFile(join(r.source, `small-${i}.txt`), `small file ${i}\n`.repeat(i + 1));
  const first = await backup(r);
  const index = join(dir, "state", "index.sqlite");
  for (const p of [index, `${index}-wal`, `${index}-shm`]) await rm(p, { force: true });
  await rm(`${index}.d`, { recursive: true, force: true });
  return { r, first, frozen: copyTree(r.source, join(dir, "frozen")), index, host: first.snapshotId.split("_")[1]! };
}

async function exportSeed(r: LocalRepo, host: string, extra: string[] = []): Promise<string> {
  const out = await vaultik(["export-catalog", r.repo, "", "--host", host, "--recipient", keys.recipient, ...extra], {
    env: { VAULTIK_PRIVATE_KEY: r.identity },
  });
  expect(out.code, out.stderr).toBe(0);
  const seed = join(r.dir, "seed.zst");
  await writeFile(seed, out.stdoutBytes);
  return seed;
}

describe("export-catalog and import-catalog", () => {
  it("after the index is lost, a seeded index makes an unchanged backup upload only its snapshot, and it restores bit-exact", async () => {
    const { r, frozen, index, host } = await afterIndexLoss();
    const before = await listing(r);
    expect(before.size).toBeGreaterThan(0);

    const seed = await exportSeed(r, host);
    // zstd, readable with standard tools; nothing of the content, only names and hashes.
    expect((await readFile(seed)).readUInt32LE(0)).toBe(0xfd2fb528);
    expect((await readFile(seed)).includes(Buffer.from("small file 1"))).toBe(false);

    const imported = await vaultik(["import-catalog", seed, r.config]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stderr).toMatch(new RegExp(`seeded ${index.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: ${before.size} blob\\(s\\)`));

    const second = await backup(r);
    expect(second.blobsUploaded).toBe(0);
    expect(second.filesUnchanged).toBe(FILES);
    expect(second.bytesRead).toBe(0);
    // The repository's listing: not one blob more, not one byte more.
    expect(await listing(r)).toEqual(before);
    await expectRestores(r, second.snapshotId, frozen);

    // The first backup after the import recorded each file's full stamp: the next one is as fast.
    const third = await backup(r);
    expect(third.filesUnchanged).toBe(FILES);
    expect(third.blobsUploaded).toBe(0);
  });

  it("drops entries whose blob the repository no longer lists with its size; the backup uploads only those again", async () => {
    const { r, frozen, host } = await afterIndexLoss();
    const seed = await exportSeed(r, host);
    const before = await listing(r);
    // The blob holding big.bin's first chunks is gone (deleted by hand).
    const [victim] = [...before.entries()].sort((a, b) => b[1] - a[1])[0]!;
    await unlink(join(r.repo, "blobs", victim.slice(0, 2), victim.slice(2, 4), victim));
    const imported = await vaultik(["import-catalog", seed, r.config]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(imported.stderr).toContain(`dropped 1 blob(s) the repository does not list with their size`);
    const second = await backup(r);
    expect(second.blobsUploaded).toBeGreaterThan(0);
    expect(second.filesUnchanged).toBeLessThan(FILES);
    const after = await listing(r);
    for (const [name, size] of before) if (name !== victim) expect(after.get(name)).toBe(size);
    await expectRestores(r, second.snapshotId, frozen);
  });

  it("refuses an index that holds data unless --force, a seed for other recipients, and a damaged seed", async () => {
    const { r, index, host } = await afterIndexLoss();
    const seed = await exportSeed(r, host);
    expect((await vaultik(["import-catalog", seed, r.config])).code).toBe(0);
    const again = await vaultik(["import-catalog", seed, r.config]);
    expect(again.code).toBe(2);
    expect(again.stderr).toContain(`${index} already holds`);
    expect((await vaultik(["import-catalog", seed, r.config, "--force"])).code).toBe(0);

    await rm(index, { force: true });
    const other = await cliKeys();
    await writeFile(r.config, (await readFile(r.config, "utf8")).replace(keys.recipient, other.recipient));
    const wrongKeys = await vaultik(["import-catalog", seed, r.config]);
    expect(wrongKeys.code).toBe(2);
    expect(wrongKeys.stderr).toMatch(/age_recipient: .*other recipients/);

    const missing = await vaultik(["import-catalog", join(r.dir, "no-such.seed"), r.config]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain(`SEED: cannot read ${join(r.dir, "no-such.seed")}`);

    const cut = join(r.dir, "cut.zst");
    const whole = await readFile(seed);
    await writeFile(cut, whole.subarray(0, Math.floor(whole.length / 2)));
    const damaged = await vaultik(["import-catalog", cut, r.config]);
    expect(damaged.code).toBe(1);
    expect(damaged.stderr).toContain(cut);
    // Nothing half-imported: the refused seed left no rows behind.
    if (existsSync(index)) {
      const db = new Database(index, { readonly: true });
      try {
        expect(db.prepare("SELECT (SELECT count(*) FROM blobs) + (SELECT count(*) FROM entries)").pluck().get()).toBe(0);
      } finally {
        db.close();
      }
    }
  });

  it("export-catalog needs the key and the host's recipients, and its help says the seed is sensitive metadata", async () => {
    const { r, host } = await afterIndexLoss();
    const noKey = await vaultik(["export-catalog", r.repo, "", "--host", host, "--recipient", keys.recipient]);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain("VAULTIK_PRIVATE_KEY");
    // The recipients must be the host's: the key that opens the snapshot among them, and as
    // many as each blob's header has stanzas (an age header does not name its recipients).
    const other = await cliKeys();
    const env = { VAULTIK_PRIVATE_KEY: r.identity };
    const notOurs = await vaultik(["export-catalog", r.repo, "", "--host", host, "--recipient", other.recipient], { env });
    expect(notOurs.code).toBe(2);
    expect(notOurs.stderr).toContain("none of these recipients is the public key of the private key given");
    const tooMany = await vaultik(["export-catalog", r.repo, "", "--host", host, "--recipient", keys.recipient, "--recipient", other.recipient], { env });
    expect(tooMany.code).toBe(2);
    expect(tooMany.stderr).toMatch(/is sealed to 1 key\(s\), not to the 2 given/);
    expect(tooMany.stdout).toBe("");
    const help = await vaultik(["export-catalog", "--help"]);
    expect(help.stdout).toMatch(/no secret and no file contents/);
    expect(help.stdout).toMatch(/sensitive/);
    const importHelp = await vaultik(["import-catalog", "--help"]);
    expect(importHelp.stdout).toMatch(/--force/);
  });
});

describe("importSeed", () => {
  const blob = "ab".repeat(32);
  const chunk = "cd".repeat(32);
  const records: SeedRecord[] = [
    { t: "blob", name: blob, size: 1000, headerLength: 200 },
    { t: "chunk", id: chunk, blob, offset: 0, length: 10, rawOffset: 0, rawLength: 5 },
    { t: "file", path: "/data/f", mode: 0o644, uid: 0, gid: 0, size: 5, mtimeNs: "1700000000000000000", chunks: [chunk] },
  ];
  const header = { host: "h", snapshot: "20261127T000000Z_h_00000000", recipients: "r", created: "2026-11-27T00:00:00Z" };

  async function lines(edit: (all: string[]) => string[]): Promise<string[]> {
    const all: string[] = [];
    for await (const l of seedLines(header, records)) all.push(l.trimEnd());
    return edit(all);
  }

  async function importInto(dir: string, text: string[]): Promise<{ error: unknown; counts: ReturnType<Catalog["counts"]> }> {
    const catalog = new Catalog(join(dir, "index.sqlite"));
    try {
      const error = await importSeed(catalog, (async function* () {
        yield* text;
      })(), { seed: "seed", listed: new Map([[blob, 1000]]), onHeader: () => {} }).then(() => undefined, (e: unknown) => e);
      return { error, counts: catalog.counts() };
    } finally {
      catalog.close();
    }
  }

  it("imports a whole seed, and refuses one without its end record, with wrong counts, or a malformed line, leaving no rows", async () => {
    const dir = await tempDir();
    const whole = await importInto(dir, await lines((a) => a));
    expect(whole.error).toBeUndefined();
    expect(whole.counts).toEqual({ blobs: 1, chunks: 1, files: 1 });
    const cases: [string, (a: string[]) => string[], RegExp][] = [
      ["no end record", (a) => a.slice(0, -1), /no end record/],
      ["wrong counts", (a) => [...a.slice(0, -1), JSON.stringify({ t: "end", blobs: 1, chunks: 2, files: 1 })], /end record counts/],
      ["a malformed chunk id", (a) => a.map((l) => l.replace(chunk, "zz")), /id is missing or malformed/],
      ["a chunk before its blob", (a) => [a[0]!, a[2]!, a[1]!, ...a.slice(3)], /which no earlier line names/],
      ["not JSON", (a) => [a[0]!, "{", ...a.slice(1)], /line 2: not JSON/],
      ["another version", (a) => [a[0]!.replace('"version":1', '"version":2'), ...a.slice(1)], /seed version 2/],
      ["a chunk past its blob's end", (a) => a.map((l) => l.replace('"offset":0,"length":10', '"offset":795,"length":10')), /lies past the end of blob/],
    ];
    for (const [name, edit, message] of cases) {
      const sub = join(dir, name.replace(/\W+/g, "-"));
      await rm(sub, { recursive: true, force: true });
      const got = await importInto(sub, await lines(edit));
      expect(got.error, name).toBeInstanceOf(IntegrityError);
      expect((got.error as Error).message, name).toMatch(message);
      expect(got.counts, name).toEqual({ blobs: 0, chunks: 0, files: 0 });
    }
  });
});
