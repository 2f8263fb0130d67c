import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateIdentity, parseIdentity } from "../src/crypto/keys.js";
import { IntegrityError } from "../src/errors.js";
import { blobKey } from "../src/repo/layout.js";
import { Repository } from "../src/repo/repository.js";
import { openFsStore } from "../src/store/fs.js";
import { openS3Store } from "../src/store/s3.js";
import type { Store } from "../src/store/store.js";
import { vaultik } from "./helpers/cli.js";
import { putBlobBomb, putSnapshotBomb, snapshotIdAt, vaultikPeakRss, zstdBomb } from "./helpers/hostile.js";
import { s3rverStoreOptions, startS3rver, type S3rverHandle } from "./helpers/s3rver.js";

// The hostile repository suite (issue 14 item 2): a zstd frame of 128 KiB that expands to 4 GiB,
// once in a correctly named blob referenced by a crafted snapshot (raw_length 14), once as a
// snapshot database. Every command that reads either must stay under 256 MB of peak RSS, and
// those that decompress it fail with exit 1 naming the object. Built from the public key only.

const PEAK_RSS_LIMIT = 256 * 1000 * 1000;

let dir: string;
let server: S3rverHandle | undefined;
let env: Record<string, string>;
let recipient: string;
let identity: string;

/** Where each crafted input lives, as the CLI's BUCKET PREFIX, and what readers must name. */
interface Input {
  location: string[];
  env: Record<string, string>;
  snapshot: string;
  /** The object an error must name. */
  names: string;
}
const inputs: Record<string, Input> = {};

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-hostile-rss-"));
  const keys = await generateIdentity();
  recipient = keys.recipient;
  identity = keys.identity;
  env = { VAULTIK_PRIVATE_KEY: identity };
  const bomb = zstdBomb();
  expect(bomb.length).toBeLessThan(132 * 1024);

  const blobRepo = join(dir, "blob-bomb");
  const blobSnap = snapshotIdAt(new Date("2026-11-20T10:00:00Z"), "victim", "0000b10b");
  const blob = await putBlobBomb(openFsStore(blobRepo), recipient, blobSnap, bomb);
  inputs["blob"] = { location: [blobRepo, ""], env, snapshot: blobSnap, names: blobKey(blob) };

  const dbRepo = join(dir, "db-bomb");
  const dbSnap = snapshotIdAt(new Date("2026-11-20T11:00:00Z"), "victim", "00005a47");
  const key = await putSnapshotBomb(openFsStore(dbRepo), recipient, dbSnap, bomb);
  inputs["db"] = { location: [dbRepo, ""], env, snapshot: dbSnap, names: key };
});

afterAll(async () => {
  await server?.close();
  await rm(dir, { recursive: true, force: true });
});

type Command = (input: Input) => string[];
const commands: Record<string, Command> = {
  restore: (i) => ["restore", ...i.location, i.snapshot, join(dir, `out-${Math.random().toString(36).slice(2)}`)],
  fetch: (i) => ["fetch", ...i.location, i.snapshot, "data/bomb.bin", join(dir, `fetched-${Math.random().toString(36).slice(2)}`)],
  check: (i) => ["check", ...i.location],
  "check --read-data": (i) => ["check", ...i.location, "--read-data"],
  snapshots: (i) => ["snapshots", ...i.location],
  "prune --dry-run": (i) => ["prune", ...i.location, "--dry-run", "--keep-last", "1"],
};

/** Commands that never decompress a blob see nothing wrong with the blob bomb. */
const blindToBlobs = new Set(["check", "snapshots", "prune --dry-run"]);

async function expectBounded(input: Input, command: string, expectFailure: boolean): Promise<void> {
  const args = commands[command]!(input);
  const run = await vaultikPeakRss(args, { env: input.env });
  const output = run.stdout + run.stderr;
  expect(run.peakRss, `${command}: peak RSS ${(run.peakRss / 1e6).toFixed(0)} MB\n${output}`).toBeLessThan(PEAK_RSS_LIMIT);
  if (expectFailure) {
    expect(run.code, output).toBe(1);
    expect(output).toContain(input.names);
  } else {
    expect(run.code, output).toBe(0);
  }
}

describe("a 4 GiB zstd bomb in a correctly named blob (directory store)", () => {
  for (const command of Object.keys(commands)) {
    it(`${command}: bounded memory${blindToBlobs.has(command) ? "" : ", exit 1 naming the blob"}`, async () => {
      await expectBounded(inputs["blob"]!, command, !blindToBlobs.has(command));
    });
  }
});

describe("a 4 GiB zstd bomb as a snapshot database (directory store)", () => {
  for (const command of Object.keys(commands)) {
    it(`${command}: bounded memory, exit 1 naming the snapshot object`, async () => {
      await expectBounded(inputs["db"]!, command, true);
    });
  }
});

describe("the same bombs on S3 (s3rver)", () => {
  let store: Store;
  const s3: Record<string, Input> = {};

  beforeAll(async () => {
    server = await startS3rver();
    const s3env = { ...env, VAULTIK_S3_ENDPOINT: server.endpoint, AWS_ACCESS_KEY_ID: "S3RVER", AWS_SECRET_ACCESS_KEY: "S3RVER", AWS_REGION: "us-east-1" };
    const bomb = zstdBomb();
    store = openS3Store(s3rverStoreOptions(server, "blob-bomb"));
    const blobSnap = inputs["blob"]!.snapshot;
    const blob = await putBlobBomb(store, recipient, blobSnap, bomb);
    s3["blob"] = { location: [server.bucket, "blob-bomb"], env: s3env, snapshot: blobSnap, names: blobKey(blob) };
    const dbSnap = inputs["db"]!.snapshot;
    const key = await putSnapshotBomb(openS3Store(s3rverStoreOptions(server, "db-bomb")), recipient, dbSnap, bomb);
    s3["db"] = { location: [server.bucket, "db-bomb"], env: s3env, snapshot: dbSnap, names: key };
  });

  it("restore of the blob bomb: bounded memory, exit 1 naming the blob", async () => {
    await expectBounded(s3["blob"]!, "restore", true);
  });

  it("check --read-data of the snapshot bomb: bounded memory, exit 1 naming the snapshot object", async () => {
    await expectBounded(s3["db"]!, "check --read-data", true);
  });
});

// Each frame of a snapshot database is bounded, but a stream of many is only bounded by disk:
// the temp file it goes to is capped too.
describe("the snapshot database size limit", () => {
  let repo: string;
  let id: string;
  let key: string;
  const MiB = 1024 * 1024;

  beforeAll(async () => {
    repo = join(dir, "big-db");
    id = snapshotIdAt(new Date("2026-11-20T12:00:00Z"), "victim", "000b16db");
    // 16 frames of 1 MiB of zeros: each within the frame limit, 16 MiB in all.
    key = await putSnapshotBomb(openFsStore(repo), recipient, id, Buffer.concat(Array.from({ length: 16 }, () => zstdBomb(MiB))));
  });

  it("stops writing at the limit with an integrity error naming the object; the default (4 GiB) lets 16 MiB through", async () => {
    const fetchTo = async (options: ConstructorParameters<typeof Repository>[2], name: string): Promise<{ err: unknown; size: number }> => {
      const r = new Repository(openFsStore(repo), "index/", options);
      const dest = join(dir, name);
      const err = await r.getSnapshot(await r.findSnapshot(id), [parseIdentity(identity)], dest).then(() => undefined, (e: unknown) => e);
      return { err, size: (await stat(dest)).size };
    };
    const capped = await fetchTo({ maxSnapshotDb: 8 * MiB }, "capped.sqlite");
    expect(capped.err).toBeInstanceOf(IntegrityError);
    expect((capped.err as IntegrityError).object).toBe(key);
    expect(capped.size).toBeLessThanOrEqual(8 * MiB);
    const uncapped = await fetchTo({}, "uncapped.sqlite");
    expect(uncapped.err).toBeUndefined();
    expect(uncapped.size).toBe(16 * MiB);
  });

  it("VAULTIK_MAX_SNAPSHOT_DB sets it for the CLI; a value that is not a size is a usage error", async () => {
    const capped = await vaultikPeakRss(["snapshots", repo, ""], { env: { ...env, VAULTIK_MAX_SNAPSHOT_DB: "8MiB" } });
    expect(capped.code, capped.stderr).toBe(1);
    expect(capped.stderr).toContain(`${key}: snapshot database decompresses to more than 8 MiB (the limit; VAULTIK_MAX_SNAPSHOT_DB raises it)`);
    expect(capped.peakRss).toBeLessThan(PEAK_RSS_LIMIT);
    const bad = await vaultik(["snapshots", repo, ""], { env: { ...env, VAULTIK_MAX_SNAPSHOT_DB: "lots" } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain("VAULTIK_MAX_SNAPSHOT_DB");
  });
});
