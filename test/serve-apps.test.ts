import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { appRetentions, loadConfig } from "../src/config/index.js";
import { parseIdentity } from "../src/crypto/keys.js";
import { Repository } from "../src/repo/repository.js";
import { Fleet } from "../src/serve/fleet.js";
import { openFsStore } from "../src/store/fs.js";
import { backupAt, cliKeys, localRepo, type LocalRepo } from "./helpers/setup.js";

// vaultik serve with a config that has apps: (issue 19): each app is a host, and its retention
// preview uses that app's own retention, as prune --config does.

const HOUR = 3600_000;
let keys: { identity: string; recipient: string };
let dir: string;
let r: LocalRepo;

beforeAll(async () => {
  keys = await cliKeys();
});
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), "vaultik-serve-apps-"));
  r = await localRepo(dir, keys);
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe("serve with apps", () => {
  it("previews each app host's own retention; other hosts get the top-level one", async () => {
    await writeFile(join(r.source, "f.txt"), "x");
    const now = Date.parse("2026-11-28T12:00:00Z");
    for (const host of ["nas-web", "nas-db", "laptop"]) {
      for (let i = 3; i >= 1; i--) await backupAt(r, now - i * HOUR, host);
    }
    const cfg = join(dir, "apps.yml");
    await writeFile(cfg, `age_recipient: ${keys.recipient}\nstore: ${r.repo}\nindex_path: ${dir}/state/index.sqlite\nhostname: nas\n` +
      `retention: {keep_last: 2}\napps:\n  - name: web\n    source_dirs: [${r.source}]\n    retention: {keep_last: 1}\n  - name: db\n    source_dirs: [${r.source}]\n    retention: {keep_last: 3}\n`);
    const config = await loadConfig(cfg);
    const fleet = new Fleet({
      repos: [{ slug: "main", repo: new Repository(openFsStore(r.repo)), retention: config.retention, hostRetention: appRetentions(config), staleAfterMs: 26 * HOUR, hostStaleAfterMs: new Map() }],
      identities: [parseIdentity(keys.identity)],
      now: () => now,
    });
    await fleet.poll();
    const forget = (host: string) => ((fleet.host("main", host)!["retention"] as { forget: string[] }).forget).length;
    expect(forget("nas-web")).toBe(2);
    expect(forget("nas-db")).toBe(0);
    expect(forget("laptop")).toBe(1);
  }, 60_000);
});
