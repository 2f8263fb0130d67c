import { mkdtemp, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, expect, it } from "vitest";
import { parseIdentity } from "../src/crypto/keys.js";
import { blobKey } from "../src/pack/names.js";
import { listNotices, PENDING_PREFIX } from "../src/repo/coordination.js";
import { Repository } from "../src/repo/repository.js";
import { prune } from "../src/prune/prune.js";
import { openFsStore } from "../src/store/fs.js";
import { backupId, cliKeys, expectRestores, localRepo, storedBlobs } from "./helpers/setup.js";
import { pseudoRandom } from "./helpers/tree.js";

// A prune killed halfway through deleting a notice's blobs leaves the notice pending; the prune
// that completes it must report what it deleted itself, not the whole notice again (issue 20).

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

const HOUR = 3600_000;

it("the prune that completes a killed one reports only the blobs it deleted", async () => {
  const dir = await mkdtemp(join(tmpdir(), "vaultik-prune-resume-"));
  dirs.push(dir);
  const r = await localRepo(dir, await cliKeys());
  for (let i = 0; i < 3; i++) await writeFile(join(r.source, `old${i}.bin`), pseudoRandom(700 << 10, 50 + i));
  await backupId(r);
  for (let i = 0; i < 3; i++) await unlink(join(r.source, `old${i}.bin`));
  await writeFile(join(r.source, "new.txt"), "new\n");
  const kept = await backupId(r);

  const store = openFsStore(r.repo);
  const repo = new Repository(store);
  const base = Date.now();
  const options = { repo, identities: [parseIdentity(r.identity)], policy: { keepLast: 1 } };
  // Past the grace period: the first snapshot is forgotten and its blobs announced.
  const first = await prune({ ...options, now: () => base + 25 * HOUR });
  expect(first.blobsAnnounced).toBeGreaterThanOrEqual(2);
  expect(first.blobsDeleted).toBe(0);
  const [notice] = await listNotices(store, PENDING_PREFIX);
  expect(notice!.blobs).toHaveLength(first.blobsAnnounced);

  // A prune after the safety window is killed after deleting one blob: the notice stays pending.
  await store.delete(blobKey(notice!.blobs[0]!));
  const before = await storedBlobs(r);
  const second = await prune({ ...options, now: () => base + 27 * HOUR });
  const after = await storedBlobs(r);
  expect(second.blobsDeleted).toBe(first.blobsAnnounced - 1);
  expect(before.length - after.length).toBe(second.blobsDeleted);
  expect(await listNotices(store, PENDING_PREFIX)).toEqual([]);
  await expectRestores(r, kept, r.source);
});
