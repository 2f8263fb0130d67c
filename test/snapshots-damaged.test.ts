import { mkdtemp, readdir, readFile, rm, truncate, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { encrypt } from "../src/crypto/age.js";
import { parseRecipient } from "../src/crypto/keys.js";
import { blobKey, snapshotKey } from "../src/repo/layout.js";
import { openFsStore } from "../src/store/fs.js";
import { openS3Store } from "../src/store/s3.js";
import type { Store } from "../src/store/store.js";
import { vaultik } from "./helpers/cli.js";
import { s3rverConfigYaml, s3rverStoreOptions, startS3rver, type S3rverHandle } from "./helpers/s3rver.js";
import { pseudoRandom } from "./helpers/tree.js";
import { backupAt, backupId, cliKeys, localRepo, storedBlobs, type LocalRepo } from "./helpers/setup.js";

// One unreadable snapshot must not hide the others (issue 14 item 6): `snapshots` lists every
// snapshot and marks the ones it cannot read, `check` reports each and checks the rest, and
// `prune` deletes nothing while a snapshot it would keep cannot be read, saying how to forget
// it. The damage is what a disk or a compromised source (public key only) could leave behind.

interface Row {
  id: string;
  status?: string;
  error?: string;
  files?: number;
}

const snapshotObject = (id: string) => `index/${id}.sqlite.zst.age`;

/** Objects under valid snapshot names that are not snapshots: random bytes, and age-sealed junk. */
async function plantBadSnapshots(store: Store, recipient: string): Promise<{ garbage: string; crafted: string }> {
  const garbage = "20200101T000000Z_evil_0badf00d";
  const crafted = "20200101T000001Z_evil_c0ffee00";
  await store.put(snapshotKey("index/", garbage), pseudoRandom(3000, 14));
  // What a host with only the public key can seal: it opens with the key, and is no database.
  await store.put(snapshotKey("index/", crafted), encrypt(Buffer.from("not a zstd stream, not a database"), [parseRecipient(recipient)]));
  return { garbage, crafted };
}

describe("on the directory store", () => {
  let dir: string;
  let r: LocalRepo;
  let recipient: string;
  const ids: string[] = [];
  let truncated: string;
  let garbage: string;
  let crafted: string;
  let lastBlob: string;
  const env = () => ({ env: { VAULTIK_PRIVATE_KEY: r.identity } });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "vaultik-snapdamage-"));
    const keys = await cliKeys();
    recipient = keys.recipient;
    r = await localRepo(dir, keys);
    for (let i = 1; i <= 3; i++) {
      const before = await storedBlobs(r);
      await writeFile(join(r.source, `f${i}.txt`), `file ${i}\n`.repeat(100 * i));
      ids.push(await backupAt(r, Date.now() - (4 - i) * 3600_000));
      lastBlob = (await storedBlobs(r)).find((b) => !before.includes(b))!;
    }
    truncated = ids[1]!;
    const path = join(r.repo, snapshotObject(truncated));
    await truncate(path, Math.floor((await readFile(path)).length / 2));
    ({ garbage, crafted } = await plantBadSnapshots(openFsStore(r.repo), recipient));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("snapshots --json lists every snapshot, the unreadable ones with status damaged and the error naming the object; exit 1", async () => {
    const out = await vaultik(["snapshots", r.repo, "", "--json"], env());
    expect(out.code, out.stderr).toBe(1);
    const rows = JSON.parse(out.stdout) as Row[];
    expect(rows.map((x) => x.id)).toEqual([garbage, crafted, ...ids]);
    const byId = new Map(rows.map((x) => [x.id, x]));
    for (const ok of [ids[0]!, ids[2]!]) {
      expect(byId.get(ok)).toMatchObject({ status: "ok", files: expect.any(Number) });
      expect(byId.get(ok)!.error).toBeUndefined();
    }
    expect(byId.get(truncated)).toMatchObject({ status: "damaged", error: expect.stringContaining(`${snapshotObject(truncated)}: age payload`) });
    expect(byId.get(garbage)).toMatchObject({ status: "damaged", error: expect.stringContaining(`${snapshotObject(garbage)}: malformed age header: not an age`) });
    expect(byId.get(crafted)).toMatchObject({ status: "damaged", error: expect.stringContaining(`${snapshotObject(crafted)}: `) });
    for (const bad of [truncated, garbage, crafted]) expect(byId.get(bad)!.files).toBeUndefined();
  });

  it("snapshots in text marks the damaged rows and warns on stderr, naming each object", async () => {
    const out = await vaultik(["snapshots", r.repo, ""], env());
    expect(out.code).toBe(1);
    const lines = out.stdout.trim().split("\n");
    expect(lines[0]).toMatch(/^ID\s+HOST\s+TIME \(UTC\)\s+FILES\s+SIZE\s+STATUS$/);
    expect(lines).toHaveLength(1 + 5);
    for (const bad of [truncated, garbage, crafted]) {
      expect(lines.find((l) => l.startsWith(bad))).toMatch(/\sdamaged$/);
      expect(out.stderr).toContain(`snapshot ${bad} cannot be read: ${snapshotObject(bad)}: `);
    }
    for (const ok of [ids[0]!, ids[2]!]) expect(lines.find((l) => l.startsWith(ok))).toMatch(/\sok$/);
    expect(out.stderr).toContain("3 of 5 snapshot(s) cannot be read");
  });

  it("with a key that opens none of them: every sealed object says wrong_key, the garbage one damaged (exit 1)", async () => {
    const wrong = (await cliKeys()).identity;
    const out = await vaultik(["snapshots", r.repo, "", "--json"], { env: { VAULTIK_PRIVATE_KEY: wrong } });
    const rows = JSON.parse(out.stdout) as Row[];
    // The garbage object does not parse as age at all: damage whatever the key, so exit 1.
    expect(out.code).toBe(1);
    expect(rows.filter((x) => x.status === "wrong_key").map((x) => x.id)).toEqual([crafted, ...ids]);
    expect(rows.find((x) => x.id === truncated)!.error).toContain("wrong private key, or a damaged header");
  });

  it("check reports every unreadable snapshot and still checks the rest (a damaged blob of the last one)", async () => {
    const blobPath = join(r.repo, blobKey(lastBlob));
    const original = await readFile(blobPath);
    const damaged = Buffer.from(original);
    damaged[damaged.length - 20]! ^= 0x01;
    await writeFile(blobPath, damaged);
    try {
      const out = await vaultik(["check", r.repo, "", "--read-data"], env());
      expect(out.code, out.stderr).toBe(1);
      expect(out.stdout).toContain("checked 5 snapshot(s)");
      for (const bad of [truncated, garbage, crafted]) {
        expect(out.stdout).toContain(`snapshot ${bad}: cannot read its database: ${snapshotObject(bad)}: `);
      }
      expect(out.stdout).toContain(`snapshot ${ids[2]} is damaged: blob ${lastBlob}: `);
      // Snapshot paths are stored without the leading slash.
      expect(out.stdout).toContain(`  affects ${join(r.source, "f3.txt").slice(1)}`);
    } finally {
      await writeFile(blobPath, original);
    }
  });

  it("prune deletes nothing (no snapshot forgotten, no blob) while a kept snapshot cannot be read and prints the forget command; once intact, a wrong key is exit 12", async () => {
    const before = { snapshots: (await readdir(join(r.repo, "index"))).sort(), blobs: await storedBlobs(r) };
    // keep-last 2 per host keeps the damaged snapshots and would forget ids[0].
    const out = await vaultik(["prune", r.repo, "", "--keep-last", "2", "--grace", "0s", "--safety-window", "0s"], env());
    expect(out.code, out.stderr).toBe(1);
    for (const bad of [truncated, garbage, crafted]) expect(out.stderr).toContain(`${snapshotObject(bad)}: `);
    expect(out.stderr).toContain("nothing was forgotten or deleted");
    expect(out.stderr).toContain(`vaultik forget ${r.repo} '' ${garbage} ${crafted} ${truncated}`);
    expect((await readdir(join(r.repo, "index"))).sort()).toEqual(before.snapshots);
    expect(await storedBlobs(r)).toEqual(before.blobs);

    // The printed command is the way out: after it, prune runs.
    const forget = await vaultik(["forget", r.repo, "", garbage, crafted, truncated], env());
    expect(forget.code, forget.stderr).toBe(0);
    const again = await vaultik(["prune", r.repo, "", "--keep-last", "2", "--grace", "0s", "--safety-window", "0s", "--json"], env());
    expect(again.code, again.stderr).toBe(0);
    expect((JSON.parse(again.stdout) as { snapshotsRemoved: string[] }).snapshotsRemoved).toEqual([]);

    // Now intact: a key that opens nothing is a wrong key, for snapshots and prune alike.
    const wrong = { env: { VAULTIK_PRIVATE_KEY: (await cliKeys()).identity } };
    const listed = await vaultik(["snapshots", r.repo, "", "--json"], wrong);
    expect(listed.code).toBe(12);
    expect((JSON.parse(listed.stdout) as Row[]).map((x) => x.status)).toEqual(["wrong_key", "wrong_key"]);
    const refused = await vaultik(["prune", r.repo, "", "--keep-last", "1", "--grace", "0s", "--safety-window", "0s"], wrong);
    expect(refused.code).toBe(12);
    expect(refused.stderr).toMatch(/index\/\S+\.sqlite\.zst\.age: no identity matches/);
    expect((await readdir(join(r.repo, "index"))).length).toBe(2);
  });
});

describe("on s3rver", () => {
  let server: S3rverHandle;
  let dir: string;

  beforeAll(async () => {
    server = await startS3rver("vaultik-snapdamage");
    dir = await mkdtemp(join(tmpdir(), "vaultik-snapdamage-s3-"));
  });
  afterAll(async () => {
    await server?.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("snapshots lists the readable snapshot beside planted bad ones and one for another key; prune names the forget command for --config, and the key for the other", async () => {
    const keys = await cliKeys();
    const prefix = "repo";
    const s3 = s3rverConfigYaml(server, prefix);
    const r = await localRepo(dir, keys);
    const config = (await readFile(r.config, "utf8")).replace(/^store: .*$/m, s3);
    await writeFile(r.config, config);
    await writeFile(join(r.source, "a.txt"), "on s3\n");
    const id = await backupId(r);
    const store = openS3Store(s3rverStoreOptions(server, prefix));
    const { garbage, crafted } = await plantBadSnapshots(store, keys.recipient);
    // Sealed to another key (as after a key rotation): not damage, a key the user did not give.
    const otherKey = "20200101T000002Z_old_0000aaaa";
    await store.put(snapshotKey("index/", otherKey), encrypt(Buffer.from("x"), [parseRecipient((await cliKeys()).recipient)]));
    const env = { env: { VAULTIK_PRIVATE_KEY: keys.identity } };

    const out = await vaultik(["snapshots", "--config", r.config, "--json"], env);
    expect(out.code, out.stderr).toBe(1);
    const rows = JSON.parse(out.stdout) as Row[];
    expect(rows.map((x) => [x.id, x.status])).toEqual([[garbage, "damaged"], [crafted, "damaged"], [otherKey, "wrong_key"], [id, "ok"]]);
    expect(rows[3]!.files).toBe(1);

    const pruned = await vaultik(["prune", "--config", r.config, "--keep-last", "5"], env);
    expect(pruned.code).toBe(1);
    expect(pruned.stderr).toContain(`vaultik forget --config ${r.config} ${garbage} ${crafted}. ${otherKey}: give the key that opens them too`);
  });
});
