import { createHash } from "node:crypto";
import { copyFile, mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { expect } from "vitest";
import { Catalog } from "../../src/catalog/db.js";
import { generateIdentity, parseRecipient } from "../../src/crypto/keys.js";
import { newSnapshotId } from "../../src/model/snapshot-id.js";
import { Repository } from "../../src/repo/repository.js";
import { SnapshotBuilder } from "../../src/snapshot/build.js";
import type { SnapshotEntry } from "../../src/snapshot/schema.js";
import { openFsStore } from "../../src/store/fs.js";
import { vaultik } from "./cli.js";

// Format-2 snapshots with entries a plain backup cannot make on every host (byte names, holes,
// hard links, devices, owners by name, xattrs), built as a source host builds them: a real
// backup stores the contents (each one chunk), then a SnapshotBuilder lists entries that use
// those chunks, finished against a copy of the host's local index and encrypted to the public
// key only.

export interface Seeded {
  dir: string;
  repo: string;
  identity: string;
  recipient: string;
  index: string;
}

/** Backs up `contents` (each small enough to be one chunk) into a directory repository under `dir`. */
export async function seedRepo(dir: string, contents: readonly Buffer[]): Promise<Seeded> {
  const source = join(dir, "seed-source");
  await mkdir(source, { recursive: true });
  for (const [i, c] of contents.entries()) await writeFile(join(source, `c${i}`), c);
  const keys = await generateIdentity();
  const repo = join(dir, "repo");
  const index = join(dir, "state", "index.sqlite");
  const config = join(dir, "seed.yml");
  await writeFile(config, `age_recipient: ${keys.recipient}\nsource_dirs: [${source}]\nstore: ${repo}\nindex_path: ${index}\n`);
  const b = await vaultik(["backup", config, "--json"]);
  expect(b.code, b.stderr).toBe(0);
  return { dir, repo, identity: keys.identity, recipient: keys.recipient, index };
}

export interface CraftEntry {
  entry: SnapshotEntry;
  /** Content chunks (each one of the seeded contents) at their file offsets; gaps are holes. */
  chunks?: { offset: number; data: Buffer }[];
  /** Makes this file another name of the earlier entry at this path (a hard link). */
  linkOf?: string;
}

export const entryOf = (path: string, type: SnapshotEntry["type"], extra: Partial<SnapshotEntry> = {}): SnapshotEntry => ({
  path, type, mode: type === "dir" ? 0o755 : 0o644, uid: 0, gid: 0, size: 0, mtimeNs: 1_600_000_000_123_456_789n, ...extra,
});

const sha = (b: Buffer) => createHash("sha256").update(b).digest();

/** Stores a format-2 snapshot of `entries` and returns its id. */
export async function craftV2(s: Seeded, entries: readonly CraftEntry[]): Promise<string> {
  const id = newSnapshotId(new Date(), "crafted");
  const db = join(s.dir, `${id}.sqlite`);
  const catalogCopy = join(s.dir, `${id}-index.sqlite`);
  await copyFile(s.index, catalogCopy);
  try {
    const builder = new SnapshotBuilder(db, {
      id, host: "crafted", time: new Date().toISOString(), sourceDirs: ["/"], vaultikVersion: "0",
      chunker: "fastcdc-2016", chunkSize: 1 << 20, chunkHash: "sha256", blobHash: "sha256", compression: "zstd",
    });
    const ids = new Map<string, number>();
    for (const e of entries) {
      const chunks = (e.chunks ?? []).map((c) => ({ offset: c.offset, length: c.data.length, hash: sha(c.data) }));
      ids.set(e.entry.path, builder.add(e.entry, chunks, e.linkOf === undefined ? undefined : ids.get(e.linkOf)!));
    }
    const catalog = new Catalog(catalogCopy);
    try {
      builder.finish(catalog);
    } finally {
      catalog.close();
    }
    await new Repository(openFsStore(s.repo)).putSnapshot(id, db, [parseRecipient(s.recipient)]);
  } finally {
    await rm(db, { force: true });
    await rm(catalogCopy, { force: true });
  }
  return id;
}
