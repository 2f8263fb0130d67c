import Database from "better-sqlite3";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { IntegrityError } from "../src/errors.js";
import { SnapshotReader } from "../src/snapshot/read.js";
import { SNAPSHOT_SCHEMA, SNAPSHOT_SCHEMA_V1 } from "../src/snapshot/schema.js";

// The versioning policy of docs/FORMAT.md §7: a reader refuses, by name, a snapshot whose format
// number or whose hash or compression names it does not know, rather than guessing (a wrong
// guess reports sound data as corrupt, or restores garbage). The chunker name is the exception:
// restoring never depends on where chunks were cut.

const META: Record<string, string> = {
  format: "2",
  id: "20261127T120000Z_host_0011aabb",
  host: "host",
  time: "2026-11-27T12:00:00.000Z",
  sourceDirs: '["/src"]',
  vaultikVersion: "0.1.0",
  chunker: "fastcdc-2016",
  chunkSize: "1048576",
  chunkHash: "sha256",
  blobHash: "sha256",
  compression: "zstd",
};

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-format-"));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

let n = 0;
function snapshotWith(changes: Record<string, string>): string {
  const path = join(dir, `snap-${++n}.sqlite`);
  const db = new Database(path);
  db.exec(changes["format"] === "1" ? SNAPSHOT_SCHEMA_V1 : SNAPSHOT_SCHEMA);
  const put = db.prepare("INSERT INTO meta(key, value) VALUES (?, ?)");
  for (const [k, v] of Object.entries({ ...META, ...changes })) put.run(k, v);
  db.close();
  return path;
}

function open(changes: Record<string, string>): unknown {
  try {
    new SnapshotReader(snapshotWith(changes), "index/snap.sqlite.zst.age").close();
    return undefined;
  } catch (err) {
    return err;
  }
}

describe("snapshot format and algorithm names (FORMAT.md §7)", () => {
  it("format 2 with the known names opens; an unknown chunker name does not stop a reader", () => {
    expect(open({})).toBeUndefined();
    expect(open({ chunker: "fastcdc-2020" })).toBeUndefined();
    // Format 1 (before byte paths and holes) is still read: test/format1-fixture restores one.
    expect(open({ format: "1" })).toBeUndefined();
  });

  it.each([
    ["a newer format", { format: "3" }, /snapshot format 3 is newer than this vaultik reads \(2\); upgrade vaultik/],
    ["format 0", { format: "0" }, /snapshot format 0 is not a format vaultik knows/],
    ["a format that is a string", { format: '"1"' }, /snapshot format "1" is not a format vaultik knows/],
    ["a fractional format", { format: "1.5" }, /snapshot format 1.5 is not a format vaultik knows/],
    ["an unknown compression", { compression: "lz4" }, /uses compression "lz4", which this vaultik does not read \(it reads "zstd"\)/],
    ["an unknown chunk hash", { chunkHash: "blake3" }, /uses chunkHash "blake3", which this vaultik does not read \(it reads "sha256"\)/],
    ["an unknown blob hash", { blobHash: "sha3-256" }, /uses blobHash "sha3-256", which this vaultik does not read \(it reads "sha256"\)/],
  ])("%s is refused with an IntegrityError naming it", (_what, changes, message) => {
    const err = open(changes);
    expect(err).toBeInstanceOf(IntegrityError);
    expect(String(err)).toMatch(message);
    expect(String(err)).toContain("index/snap.sqlite.zst.age");
  });
});
