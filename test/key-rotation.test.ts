import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import type { BlobName, ChunkId } from "../src/model/ids.js";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { Catalog, CATALOG_VERSION } from "../src/catalog/db.js";
import { recipientSetId } from "../src/catalog/recipients.js";
import { parseRecipient } from "../src/crypto/keys.js";
import { vaultik } from "./helpers/cli.js";
import { backupId, cliKeys, copyTree, expectRestores, localRepo } from "./helpers/setup.js";
import { makeTree, pseudoRandom } from "./helpers/tree.js";

// A user who rotates a leaked key (README, "Getting the private key off the source host") must
// get snapshots that the new key alone restores: the local index may deduplicate only against
// blobs sealed to exactly the recipients of this run.

let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-rotate-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface CheckJson {
  damage: { snapshot: string }[];
  unreadable: { snapshot: string }[];
  blobsRead: number;
}

describe("changing age_recipient", () => {
  it("the snapshot after the change restores bit-exact, and passes check --read-data, with only the new key", async () => {
    const [a, b] = [await cliKeys(), await cliKeys()];
    const r = await localRepo(dir, a);
    await makeTree(r.source, { chunkSize: 64 * 1024, bigFileSize: 3 << 20 });
    const first = await backupId(r);

    // Key B replaces key A; one file changes, everything else is unchanged.
    await writeFile(r.config, (await readFile(r.config, "utf8")).replace(a.recipient, b.recipient));
    await writeFile(join(r.source, "changed.bin"), pseudoRandom(100_000, 9));
    const second = await backupId({ ...r, identity: b.identity });
    const frozen = copyTree(r.source, join(dir, "frozen"));

    await expectRestores({ ...r, identity: b.identity }, second, frozen);

    const check = await vaultik(["check", r.repo, "", "--read-data", "--json"], { env: { VAULTIK_PRIVATE_KEY: b.identity } });
    const report = JSON.parse(check.stdout) as CheckJson;
    expect(report.damage.filter((d) => d.snapshot === second), check.stdout).toEqual([]);
    // The first snapshot is A's alone: B cannot open it, and that is the only problem.
    expect(report.unreadable.map((u) => u.snapshot)).toEqual([first]);
    expect(report.blobsRead).toBeGreaterThan(0);
  });
});

describe("catalog: blobs are recorded with their recipient set", () => {
  const A = parseRecipient("age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p");
  const B = { ...A, publicKey: Buffer.alloc(32, 7) };
  const chunk = Buffer.alloc(32, 1);
  const location = { id: chunk.toString("hex") as ChunkId, blob: "aa".repeat(32) as BlobName, offset: 0, length: 10, rawOffset: 0, rawLength: 10, compression: "zstd" as const };
  const stamp = { size: 10n, mtimeNs: 1n, ctimeNs: 1n, inode: 1n, dev: 1n };

  it("the set's id ignores order and duplicates, and differs between sets", () => {
    expect(recipientSetId([A, B])).toBe(recipientSetId([B, A, B]));
    expect(recipientSetId([A])).not.toBe(recipientSetId([B]));
    expect(recipientSetId([A])).not.toBe(recipientSetId([A, B]));
  });

  it("after a change of recipients, chunks and unchanged files of the old set count as not stored; a return does not revive them", () => {
    const catalog = new Catalog(join(dir, "index.sqlite"));
    try {
      catalog.useRecipients(recipientSetId([A]));
      catalog.recordEntries([{ path: "/f", type: "file", mode: 0o644, uid: 0, gid: 0, stamp }]);
      catalog.recordBlob({ name: "aa".repeat(32), size: 100, headerLength: 50 }, [location]);
      catalog.recordChunks([{ path: "/f", stamp, chunks: [{ hash: chunk, offset: 0, length: 10 }] }]);
      expect(catalog.hasChunk(chunk)).toBe(true);
      expect(catalog.lookupFile("/f", stamp).status).toBe("unchanged");

      catalog.useRecipients(recipientSetId([B]));
      expect(catalog.hasChunk(chunk)).toBe(false);
      expect(catalog.lookupFile("/f", stamp).status).toBe("changed");
      catalog.useRecipients(recipientSetId([A]));
      expect(catalog.hasChunk(chunk)).toBe(false);
    } finally {
      catalog.close();
    }
  });

  it("an index of the previous version is migrated: its blobs, of unknown recipients, count as not stored", () => {
    const path = join(dir, "old.sqlite");
    const old = new Catalog(path);
    old.useRecipients(recipientSetId([A]));
    old.recordBlob({ name: "bb".repeat(32), size: 100, headerLength: 50 }, [location]);
    // What version 4 looked like: no recipients column.
    old.db.exec("ALTER TABLE blobs DROP COLUMN recipients");
    old.setState("catalog_version", "4");
    old.close();
    const catalog = new Catalog(path);
    try {
      expect(catalog.getState("catalog_version")).toBe(String(CATALOG_VERSION));
      catalog.useRecipients(recipientSetId([A]));
      expect(catalog.hasChunk(chunk)).toBe(false);
    } finally {
      catalog.close();
    }
  });
});
